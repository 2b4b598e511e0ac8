# The original tiny-imagenet-200.zip, which the improved notebook downloaded, unpacked and read
# with ImageFolder: prepare_data's input for the folder source (rules/data.smk), unless the
# folder is already unpacked. By hand: snakemake --cores 1 unpack_tinyimagenet
import os

TINYIMAGENET = config["data"]["folder"]
# where the zip's tiny-imagenet-200/ folder goes: data.folder.root, else beside the zip
UNPACKED = TINYIMAGENET["root"] or os.path.splitext(TINYIMAGENET["archive"])[0]
# the file that stands for the whole unpacked folder
UNPACKED_MARK = f"{UNPACKED}/wnids.txt"


rule fetch_tinyimagenet:
    # The zip, downloaded here unless it is in place (placed by hand, say), is no rule's output:
    # Snakemake deletes a job's outputs before it runs the job again, and a user's 248 MB
    # download must never go. The output is a receipt: path, URL, md5 as pinned, sha256, size.
    output:
        f"{OUT}/data/tiny-imagenet-200.zip.json",
    log:
        f"{OUT}/logs/fetch_tinyimagenet.log",
    params:
        url=TINYIMAGENET["url"],
        md5=TINYIMAGENET["md5"],
        archive=TINYIMAGENET["archive"],
    script:
        "scripts/fetch_tinyimagenet.py"


rule unpack_tinyimagenet:
    # the folder appears whole (built beside it, then renamed); wnids.txt stands for all of it
    input:
        fetched=rules.fetch_tinyimagenet.output[0],
    output:
        UNPACKED_MARK,
    log:
        f"{OUT}/logs/unpack_tinyimagenet.log",
    params:
        # the folder wnids.txt lies in, read off the output so that the path is written once
        root=lambda wildcards, output: os.path.dirname(output[0]),
        archive=TINYIMAGENET["archive"],
        md5=TINYIMAGENET["md5"],
    script:
        "scripts/unpack_tinyimagenet.py"
