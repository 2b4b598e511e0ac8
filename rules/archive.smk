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
    # a zip placed by hand is not fetched again; unpack_tinyimagenet checks its md5 where it is used
    output:
        TINYIMAGENET["archive"],
    log:
        f"{OUT}/logs/fetch_tinyimagenet.log",
    params:
        url=TINYIMAGENET["url"],
        md5=TINYIMAGENET["md5"],
    script:
        "scripts/fetch_tinyimagenet.py"


rule unpack_tinyimagenet:
    # the folder appears whole (built beside it, then renamed); wnids.txt stands for all of it
    input:
        rules.fetch_tinyimagenet.output,
    output:
        UNPACKED_MARK,
    log:
        f"{OUT}/logs/unpack_tinyimagenet.log",
    params:
        # the folder wnids.txt lies in, read off the output so that the path is written once
        root=lambda wildcards, output: os.path.dirname(output[0]),
        md5=TINYIMAGENET["md5"],
    script:
        "scripts/unpack_tinyimagenet.py"
