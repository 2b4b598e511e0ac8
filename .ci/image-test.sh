#!/usr/bin/env bash
# The image test (`make image-test`; .ci/run runs it after `make test`): builds the Dockerfile's
# image as a user would, then checks inside it, as its non-root user, what the README promises:
#   - the offline demo (the image's CMD) into a bind-mounted results/: every file it writes
#     belongs to the build's UID (4242 here, not the runner's), paper.pdf is there, and the
#     seed-0 runs of both published recipes predict byte for byte what the host's environment
#     predicts (predictions.csv, summary.json; the host runs those two runs here too);
#   - `python -m convnext_tinyimagenet verify --check` on the demo's results;
#   - a second `docker run` is a no-op ("Nothing to be done");
#   - provenance.json records the GIT_COMMIT build argument;
#   - `snakemake verify_published` passes on the published CSVs mounted into
#     resources/published, and refuses a tampered copy;
#   - the image's Python packages are envs/lock.txt's releases;
#   - a code-only change rebuilds only the late layers (seconds), and a build by root
#     (UID 0) still runs as a non-root user;
#   - and, outside the image: Debian 12's own python3.11 (3.11.2) resolves envs/ as `make`
#     installs it (a bookworm container with Debian's python3.11, python3-pip, python3-venv).
#
# Needs root (it installs docker.io and debootstrap where missing, starts dockerd when none
# answers and stops it again, and builds base images with debootstrap: .ci/standin-base.sh) and
# the project's environment first on PATH (`make image-test` puts .venv/bin there): the host's
# reference runs and its pip run in it. Nothing is left behind but the image and its base
# images (`docker rmi convnext-tinyimagenet:0.1.0` frees about 7.7 GB); results go to a
# temporary folder.
#
# The build's packages: where this machine's pip takes wheels from local indexes (file:// URLs
# in its configuration, such as the 2.6 GB of torch and CUDA wheels), the build gets the same
# indexes over HTTP from 127.0.0.1 (PIP_EXTRA_INDEX_URL build argument, `--network host`)
# instead of downloading them again; the pins decide what is installed either way.
set -euo pipefail
cd "$(dirname "$0")/.."
# root: through env, so that sudo's secure_path does not replace the project's environment
[ "$(id -u)" -eq 0 ] || exec sudo env "PATH=$PATH" "TMPDIR=${TMPDIR:-/tmp}" bash "$0" "$@"

IMAGE=$(python -c 'import yaml; print(yaml.safe_load(open("config/config.yaml"))["container"])')
TAG=${IMAGE#docker-daemon://}           # the image the Snakefile's container: names
BUILD_UID=4242                          # not the runner's: ownership shows the build's UID
[ "${SUDO_UID:-0}" != $BUILD_UID ] || BUILD_UID=4243
COMMIT="$(git rev-parse HEAD)$(git diff --quiet HEAD || echo -dirty)"
PORT=${IMAGE_TEST_PORT:-8741}           # fixed: the URL is part of the package layer's cache key
PUBLISHED=${PUBLISHED:-../shared/published}
work=$(mktemp -d "${TMPDIR:-/tmp}/image-test.XXXXXX")
dockerd_pid="" server_pid="" build_pid="" built_in=""
declare -A jobs_running=()

# Step output and timing -------------------------------------------------------------------
started=$(date +%s) step_started=$started step_name="" timings=()
step() {
  local now
  now=$(date +%s)
  [ -z "$step_name" ] || timings+=("$(printf '%5ds  %s' $((now - step_started)) "$step_name")")
  step_name=$1 step_started=$now
  [ -z "$step_name" ] || printf '\n== image-test [%ss]: %s\n' $((now - started)) "$step_name"
}
fail() { echo "image-test: FAILED: $*" >&2; exit 1; }
ok() { echo "   ok: $*"; }

cleanup() {
  local status=$? pid
  for pid in "${jobs_running[@]}" $build_pid; do kill_tree "$pid"; done
  docker ps -aq --filter "label=image-test=$$" | xargs -r docker rm -f >/dev/null 2>&1 || true
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  docker rmi "$TAG-code-change" "$TAG-root-build" >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
    echo "image-test: stopped the dockerd it started (pid $dockerd_pid)"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 143' TERM INT

in_image() {  # docker run with the demo's results/ mounted, as the image's user
  docker run --rm --label "image-test=$$" -v "$work/results:/project/results" "$@" &
  wait $!       # in the background: a signal reaches the trap at once
}

kill_tree() {  # PID: the process and its descendants, by pid
  local child
  for child in $(pgrep -P "$1" || true); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

background() {  # NAME LOG COMMAND...: COMMAND in the background, output in LOG, seconds in LOG.s
  local name=$1 log=$2
  shift 2
  (
    began=$(date +%s) status=0
    "$@" || status=$?
    echo $(($(date +%s) - began)) >"$log.s"
    exit $status
  ) >"$log" 2>&1 &
  jobs_running[$name]=$!
}

collect() {  # NAME LOG WHAT: waits for a background job; its log's tail if it failed
  local pid=${jobs_running[$1]}
  unset "jobs_running[$1]"
  wait "$pid" || { tail -30 "$2"; fail "$3"; }
  echo "   ($3 took $(cat "$2.s")s in the background)"
}

build() {  # TAG CONTEXT UID COMMIT LOG: docker build, its log in LOG, its seconds in $built_in
  local began
  began=$(date +%s)
  docker build "${build_args[@]}" --build-arg "UID=$3" --build-arg "GIT_COMMIT=$4" -t "$1" "$2" \
    >"$5" 2>&1 &
  build_pid=$!   # waited for in the background: a signal reaches the trap at once
  wait $build_pid || { tail -40 "$5"; fail "docker build -t $1"; }
  build_pid="" built_in=$(($(date +%s) - began))
}

# -------------------------------------------------------------------------------------------
step "tools: docker.io and debootstrap"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ok "installed ${missing[*]}"
else
  ok "present"
fi

step "docker daemon"
if docker info >/dev/null 2>&1; then
  ok "one answers; it is left running"
else
  dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; fail "dockerd did not start"; }
  ok "started dockerd (pid $dockerd_pid)"
fi

step "base images (real where they can be pulled, stand-ins where not)"
.ci/standin-base.sh

step "local package indexes for the build"
build_args=()
mkdir "$work/indexes"
indexes=()
for url in $(python -m pip config list 2>/dev/null | sed -n "s/^[a-z]*\.extra-index-url='\(.*\)'$/\1/p"); do
  case $url in file://*/simple | file://*/simple/) ;; *) continue ;; esac
  root=$(dirname "${url#file://}")     # the index and the files its pages link to (../../files)
  [ -d "$root" ] || continue
  ln -s "$root" "$work/indexes/${#indexes[@]}"
  indexes+=("http://127.0.0.1:$PORT/${#indexes[@]}/simple")
done
if [ ${#indexes[@]} -gt 0 ]; then
  python -m http.server --bind 127.0.0.1 --directory "$work/indexes" "$PORT" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do
    python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1])' "${indexes[0]}/" \
      2>/dev/null && break
    kill -0 $server_pid 2>/dev/null || fail "no server on 127.0.0.1:$PORT (IMAGE_TEST_PORT=...)"
    sleep 0.1
  done
  build_args+=(--network host --build-arg "PIP_EXTRA_INDEX_URL=${indexes[*]}")
  ok "serving ${#indexes[@]} local index(es) of this machine's pip on 127.0.0.1:$PORT"
else
  ok "none in this machine's pip configuration: the build downloads every package"
fi

step "in the background while the image builds: the host's reference runs, Debian 12's Python"
# The host's reference: the seed-0 runs of both published recipes in the project's environment,
# as `make demo` runs them (targets first: --configfile and --config take every word up to the
# next option).
runs=(baseline/seed0 improved/seed0)
targets=()
for run in "${runs[@]}"; do targets+=("$work/host/$run/summary.json"); done
background host "$work/host.log" python -m snakemake "${targets[@]}" --cores all \
  --configfile config/smoke.yaml --config paper_pdf=False "output_dir=$work/host"
ok "host reference runs: ${runs[*]}"
# Debian 12 as a new user has it: its python3.11 (3.11.2), python3-pip and python3-venv, and
# envs/ resolved as the Makefile installs it (a venv, then both requirement files).
background debian "$work/debian.log" docker run --rm --label "image-test=$$" \
  --network host -v "$PWD/envs:/envs:ro" -v /etc/ssl/certs/ca-certificates.crt:/etc/host-ca.crt:ro \
  -e PIP_CERT=/etc/host-ca.crt debian:bookworm sh -ec '
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3.11 python3-pip python3-venv >/dev/null
    python3.11 -m venv /tmp/venv
    /tmp/venv/bin/python -m pip install --quiet --disable-pip-version-check --dry-run \
      --report /tmp/report.json -r /envs/requirements.txt -r /envs/requirements-dev.txt
    /tmp/venv/bin/python -c "import json, platform
print(\"Python\", platform.python_version(), \"(Debian 12):\",
      len(json.load(open(\"/tmp/report.json\"))[\"install\"]), \"packages resolve\")"'
ok "Debian 12's python3.11 resolving envs/"

step "build $TAG (UID $BUILD_UID, GIT_COMMIT $COMMIT)"
previous=$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)
build "$TAG" . $BUILD_UID "$COMMIT" "$work/build.log"
build_seconds=$built_in
size=$(docker image inspect -f '{{.Size}}' "$TAG")
ok "built in ${build_seconds}s; $(numfmt --to=si --round=nearest "$size")B"
# the image this tag named before: its layers that no other image uses go (gigabytes each time
# the packages change); one in use by a container stays
current=$(docker image inspect -f '{{.Id}}' "$TAG")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  if docker rmi "$previous" >/dev/null 2>&1; then ok "removed the previous $TAG (${previous:7:12})"; fi
fi

step "the image's packages are envs/lock.txt's"
docker run --rm --label "image-test=$$" "$TAG" pip freeze --all --exclude-editable | grep -v '^pip==' >"$work/freeze.txt"
extra=$(grep -vxFf envs/lock.txt "$work/freeze.txt" || true)
[ -z "$extra" ] || fail "installed, not in envs/lock.txt: $extra"
ok "$(wc -l <"$work/freeze.txt") packages, each at its envs/lock.txt release"
sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' envs/requirements-dev.txt | while read -r tool; do
  ! grep -qi "^$tool==" "$work/freeze.txt" || fail "$tool (envs/requirements-dev.txt) is installed"
done
ok "none of envs/requirements-dev.txt's tools"

step "the offline demo in the image (docker run IMAGE), into a bind-mounted results/"
install -d -o $BUILD_UID -g $BUILD_UID "$work/results"   # the user's own results/, as in a clone
demo_started=$(date +%s)
in_image "$TAG" >"$work/demo.log" 2>&1 || { tail -40 "$work/demo.log"; fail "the demo"; }
demo_seconds=$(($(date +%s) - demo_started))
demo=$work/results/demo
ok "finished in ${demo_seconds}s"
foreign=$(find "$work/results" ! -uid $BUILD_UID | head -5)
[ -z "$foreign" ] || fail "not owned by uid $BUILD_UID: $foreign"
ok "every file belongs to uid $BUILD_UID ($(find "$work/results" -type f | wc -l) files)"
[ -s "$demo/paper.pdf" ] || fail "no results/demo/paper.pdf"
ok "results/demo/paper.pdf ($(stat -c %s "$demo/paper.pdf") bytes)"
collect host "$work/host.log" "the host's reference runs"
for run in "${runs[@]}"; do
  accuracy=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["accuracy"])' \
    "$work/host/$run/summary.json")
  for name in predictions.csv summary.json; do
    cmp -s "$demo/$run/$name" "$work/host/$run/$name" \
      || fail "$run/$name differs between the image and the host"
  done
  ok "$run: predictions.csv and summary.json byte-identical to the host's (accuracy $accuracy %)"
done

step "verify --check on the demo's results, in the image"
in_image "$TAG" python -m convnext_tinyimagenet verify --check \
  results/demo/verification.json --config results/demo/config.yaml >"$work/check.log" 2>&1 \
  || { cat "$work/check.log"; fail "verify --check"; }
ok "$(tail -1 "$work/check.log")"

step "a second docker run is a no-op"
in_image "$TAG" >"$work/again.log" 2>&1 || { tail -20 "$work/again.log"; fail "second run"; }
grep -q "Nothing to be done" "$work/again.log" || { tail -20 "$work/again.log"; fail "it ran jobs"; }
ok "Nothing to be done"

step "provenance.json records the GIT_COMMIT build argument"
python - "$demo" "$COMMIT" <<'EOF'
import json, sys
from pathlib import Path
commit, _, dirty = sys.argv[2].partition("-")
for path in sorted(Path(sys.argv[1]).glob("*/seed*/provenance.json")):
    git = json.loads(path.read_text())["train"]["git"]
    expected = {"commit": commit, "dirty": dirty == "dirty", "source": "image"}
    assert git == expected, f"{path}: {git}, built with {sys.argv[2]}"
print(f"   ok: {commit}{'-dirty' if dirty else ''} (source: image) in every run's provenance.json")
EOF

step "snakemake verify_published on the published CSVs, and a tampered copy refused"
[ -d "$PUBLISHED" ] || fail "no published CSVs in $PUBLISHED (the shared folder beside the clone)"
published=$(cd "$PUBLISHED" && pwd)
in_image -v "$published:/project/resources/published:ro" "$TAG" snakemake verify_published \
  >"$work/published.log" 2>&1 || { tail -30 "$work/published.log"; fail "verify_published"; }
grep -q "verification passed" "$work/published.log" || fail "no 'verification passed'"
ok "verification passed ($(python -c 'import json, sys
print(json.load(open(sys.argv[1]))["verdict"])' "$work/results/published/verification.json"))"
# A user whose copy was altered, in a results/ of their own: the first check refuses it.
mkdir "$work/tampered"
cp "$published"/*.csv "$work/tampered/"
chmod -R a+rX,u+w "$work/tampered"
csv=$work/tampered/improvement_validation_predictions.csv
[ "$(sed -n 2p "$csv")" = "0,0,0,True" ] || fail "unexpected first row in $csv"
sed -i '2s/.*/0,0,1,False/' "$csv"    # one prediction changed, still self-consistent
install -d -o $BUILD_UID -g $BUILD_UID "$work/other-results"
if docker run --rm --label "image-test=$$" -v "$work/other-results:/project/results" \
  -v "$work/tampered:/project/resources/published:ro" "$TAG" snakemake verify_published \
  >"$work/tampered.log" 2>&1; then
  fail "a tampered CSV passed"
fi
grep -q "refused" "$work/tampered.log" || { tail -20 "$work/tampered.log"; fail "not refused"; }
ok "refused: $(grep -m1 -o 'resources/published/[^ ]* has sha256 [0-9a-f]\{12\}' \
  "$work/tampered.log")..."

step "a code-only change rebuilds only the late layers"
mkdir "$work/context"
git ls-files -z --cached --others --exclude-standard | tar -c --null -T - | tar -C "$work/context" -x
echo "# image-test: a code-only change" >>"$work/context/src/convnext_tinyimagenet/__init__.py"
build "$TAG-code-change" "$work/context" $BUILD_UID "${COMMIT%-dirty}-dirty" "$work/rebuild.log"
rebuild_seconds=$built_in
grep -A1 "^Step .*envs/requirements.txt" "$work/rebuild.log" | grep -q "Using cache" \
  || fail "the package layer was rebuilt"
ok "rebuilt in ${rebuild_seconds}s; the package layer came from the cache"

step "a build by root (UID 0) runs as a non-root user"
build "$TAG-root-build" . 0 "$COMMIT" "$work/root.log"
root_seconds=$built_in
user=$(docker run --rm --label "image-test=$$" "$TAG-root-build" sh -c 'echo "$(id -un) $(id -u)"')
[ "$user" = "artifact 1000" ] || fail "a root build runs as $user"
ok "built in ${root_seconds}s; runs as $user"

step "Debian 12's own python3.11 resolves envs/ as make installs it"
collect debian "$work/debian.log" "Debian 12's python3.11"
ok "$(tail -1 "$work/debian.log")"

step ""
echo
echo "image-test: passed in $(($(date +%s) - started))s"
printf '%s\n' "${timings[@]}"
echo "image: $TAG, $(numfmt --to=si --round=nearest "$size")B ($size bytes); build ${build_seconds}s, rebuild after a"\
  "code change ${rebuild_seconds}s, offline demo ${demo_seconds}s"
