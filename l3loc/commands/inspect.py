"""Check data before training: an l3_dataset.npz, a CT scan file or a DICOM series folder.

    l3loc inspect work/data/synth_demo/l3_dataset.npz
    l3loc inspect scan.nii.gz
    l3loc inspect dicom_folder/ [--series-uid UID]

A scan is also checked for being a CT in Hounsfield units (not a mask, a scout, a PET, an image
already windowed, a CT without its rescale intercept; l3loc/io/ct_checks.py): each finding is a
line "warning: <path>: <reason>".

Exit status: 0 = no problem, 1 = problems found (invalid cases or warnings, all listed),
2 = unreadable input.
"""


def add_arguments(parser) -> None:
    parser.add_argument("path", help="l3_dataset.npz, scan file (.nii/.nii.gz/.nrrd/.mha/.mhd) or DICOM folder")
    parser.add_argument("--series-uid", help="DICOM: which series (default: the one with most slices)")


def run(args) -> int:
    if args.path.endswith(".npz"):
        from l3loc.io.npz import describe_dataset, read_l3_npz

        ds, problems = read_l3_npz(args.path, skip_bad=True)
        print(f"{args.path}\n{describe_dataset(ds, problems)}")
        return 1 if problems else 0
    from l3loc.io.ct_checks import read_ct
    from l3loc.io.volume import describe_volume

    ct, findings = read_ct(args.path, series_uid=args.series_uid, refuse=False)
    print(describe_volume(ct))
    for f in findings:
        refused = " (predict and training refuse this scan)" if f.refused else ""
        print(f"warning: {ct.path}: {f.problem}{refused}")
    return 1 if findings else 0
