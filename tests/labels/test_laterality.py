"""The lateral-name parser on real label sets: what pairs, what says a side but has no partner, and
names that must never pair."""

from __future__ import annotations

import pytest

from scseg.labels.codes import segment_code
from scseg.labels.hemispheres import detect_pairs, pair_stem
from scseg.labels.laterality import pair_lateral, parse_side, unpaired_lateral

# (dataset, structure names as the dataset spells them, expected pairs, expected unpaired lateral names)
REAL_LABEL_SETS = [
    (
        "FreeSurfer LUT (aseg, DKT, Destrieux, white matter)",
        ["Left-Cerebral-White-Matter", "Left-Lateral-Ventricle", "Left-Inf-Lat-Vent", "Left-Thalamus",
         "Left-VentralDC", "Left-Accumbens-area", "Left-WM-hypointensities", "3rd-Ventricle", "Brain-Stem", "CSF",
         "WM-hypointensities", "Optic-Chiasm", "CC_Posterior", "CC_Mid_Anterior", "Right-Cerebral-White-Matter",
         "Right-Lateral-Ventricle", "Right-Inf-Lat-Vent", "Right-Thalamus", "Right-VentralDC",
         "Right-Accumbens-area", "Right-WM-hypointensities", "ctx-lh-bankssts", "ctx-rh-bankssts",
         "ctx_lh_G_and_S_frontomargin", "ctx_rh_G_and_S_frontomargin", "wm-lh-insula", "wm-rh-insula"],
        [("Left-Cerebral-White-Matter", "Right-Cerebral-White-Matter"),
         ("Left-Lateral-Ventricle", "Right-Lateral-Ventricle"), ("Left-Inf-Lat-Vent", "Right-Inf-Lat-Vent"),
         ("Left-Thalamus", "Right-Thalamus"), ("Left-VentralDC", "Right-VentralDC"),
         ("Left-Accumbens-area", "Right-Accumbens-area"), ("Left-WM-hypointensities", "Right-WM-hypointensities"),
         ("ctx-lh-bankssts", "ctx-rh-bankssts"), ("ctx_lh_G_and_S_frontomargin", "ctx_rh_G_and_S_frontomargin"),
         ("wm-lh-insula", "wm-rh-insula")],
        [],
    ),
    (
        "AAPM TG-263 (radiotherapy)",
        ["Brainstem", "SpinalCord", "Parotid_L", "Parotid_R", "Glnd_Submand_L", "Glnd_Submand_R", "OpticNrv_L",
         "OpticNrv_R", "Lens_L", "Lens_R", "A_Carotid_L", "A_Carotid_R", "Bone_Mandible", "Esophagus", "Larynx",
         "Cavity_Oral", "Lungs", "Lung_L", "Lung_R", "Lung_LUL", "Lung_RUL", "Lung_RML", "Bowel_Large", "Rectum"],
        [("Parotid_L", "Parotid_R"), ("Glnd_Submand_L", "Glnd_Submand_R"), ("OpticNrv_L", "OpticNrv_R"),
         ("Lens_L", "Lens_R"), ("A_Carotid_L", "A_Carotid_R"), ("Lung_L", "Lung_R")],
        [],
    ),
    (
        "TotalSegmentator class map",
        ["spleen", "kidney_right", "kidney_left", "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left",
         "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right",
         "vertebrae_L1", "vertebrae_L2", "vertebrae_T12", "vertebrae_S1", "heart", "atrial_appendage_left",
         "rib_left_1", "rib_right_1", "rib_left_12", "rib_right_12", "common_carotid_artery_right",
         "common_carotid_artery_left", "inferior_vena_cava"],
        [("kidney_left", "kidney_right"), ("adrenal_gland_left", "adrenal_gland_right"),
         ("lung_upper_lobe_left", "lung_upper_lobe_right"), ("lung_lower_lobe_left", "lung_lower_lobe_right"),
         ("rib_left_1", "rib_right_1"), ("rib_left_12", "rib_right_12"),
         ("common_carotid_artery_left", "common_carotid_artery_right")],
        ["lung_middle_lobe_right", "atrial_appendage_left"],  # one-sided anatomy: no partner exists
    ),
    (
        "Neuromorphometrics (MALC 2012)",
        ["Right Accumbens Area", "Left Accumbens Area", "Right LOrG  lateral orbital gyrus",
         "Left LOrG  lateral orbital gyrus", "Right ACgG anterior cingulate gyrus", "Left ACgG anterior cingulate gyrus",
         "3rd Ventricle", "Brain Stem", "lhos", "Vitamin E Tablet"],
        [("Left Accumbens Area", "Right Accumbens Area"),
         ("Left LOrG  lateral orbital gyrus", "Right LOrG  lateral orbital gyrus"),
         ("Left ACgG anterior cingulate gyrus", "Right ACgG anterior cingulate gyrus")],
        [],  # the L of LOrG is part of an abbreviation, not a second side
    ),
    ("MSD Task02 Heart", ["left atrium"], [], ["left atrium"]),
    ("MSD Task04 Hippocampus", ["Anterior", "Posterior"], [], []),
    ("MSD Task05 Prostate", ["PZ", "TZ"], [], []),
    (
        "OpenKBP head and neck",
        ["Brainstem", "SpinalCord", "RightParotid", "LeftParotid", "Esophagus", "Larynx", "Mandible"],
        [("LeftParotid", "RightParotid")],
        [],
    ),
    (
        "other clinical spellings",
        ["lt_parotid", "rt_parotid", "Rt Lung", "Lt Lung", "lung_R", "lung_L", "LKidney", "RKidney",
         "RIGHTEYE", "LEFTEYE"],
        [("lt_parotid", "rt_parotid"), ("Lt Lung", "Rt Lung"), ("lung_L", "lung_R"), ("LKidney", "RKidney"),
         ("LEFTEYE", "RIGHTEYE")],
        [],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("names", "pairs", "unpaired"), [s[1:] for s in REAL_LABEL_SETS], ids=[s[0] for s in REAL_LABEL_SETS]
)
def test_real_label_sets_pair_as_their_anatomy_does(names, pairs, unpaired) -> None:  # fmt: skip
    pairing = pair_lateral(names)
    assert pairing.pairs == pairs
    assert pairing.unpaired == unpaired
    assert detect_pairs(names) == pairs, "the label tables use the same parser"


@pytest.mark.parametrize(
    ("names", "why"),
    [
        (["Lens_L", "Lung_R"], "different structures"),
        (["Lt_Parotid", "Parotid_R"], "the side stands in different places"),
        (["Left-Thalamus", "Right-Thalamus-Proper"], "the rest of the names differ"),
        (["Parotid_L", "Lt_Parotid_Extra", "Parotid_R", "Parotid_Lt"], "two left parotids: which one?"),
        (["Left-Parotid", "Left-Parotid-2"], "both on the left"),
        (["Lt_Parotid_R"], "its side words disagree"),
    ],
)
def test_names_that_must_not_pair(names: list[str], why: str) -> None:
    pairing = pair_lateral(names)
    assert pairing.pairs == [], why
    assert pairing.unpaired == names, "each of them says a side, so mirroring must not go ahead unpaired"


@pytest.mark.parametrize(
    "name",
    ["vertebrae_L1", "vertebrae_T12", "Lung_LUL", "LN_Ax_L1", "cleft", "Brain-Stem", "Lateral-Ventricle",
     "Larynx", "Rectum", "GTVp", "CC_Posterior", "Bone_Mandible", "SpinalCord", "upright", "bright"],
)  # fmt: skip
def test_names_without_a_side(name: str) -> None:
    assert parse_side(name) is None


@pytest.mark.parametrize(
    ("name", "side", "stem"),
    [
        ("Left-Hippocampus", "left", "Hippocampus"),
        ("ctx-rh-insula", "right", "ctx-insula"),
        ("Parotid_L", "left", "Parotid"),
        ("kidney_right", "right", "kidney"),
        ("rib_left_3", "left", "rib_3"),
        ("RightParotid", "right", "Parotid"),
        ("LParotid", "left", "Parotid"),
        ("lt_parotid", "left", "parotid"),
        ("Rt Lung", "right", "Lung"),
        ("RIGHTPAROTID", "right", "PAROTID"),
        ("Lt_Parotid_R", None, "Parotid"),
    ],
)
def test_side_and_stem(name: str, side: str | None, stem: str) -> None:
    lateral = parse_side(name)
    assert lateral is not None and lateral.side == side and lateral.stem == stem
    if side is not None:
        assert pair_stem(name) == stem


def test_declared_pairs_leave_only_the_rest_unpaired() -> None:
    names = ["Parotid Gland L", "Parotid Gland R", "Eye_L", "Mandible"]
    assert unpaired_lateral(names, [("Parotid Gland L", "Parotid Gland R")]) == ["Eye_L"]
    assert unpaired_lateral(names, []) == ["Parotid Gland L", "Parotid Gland R", "Eye_L"]


@pytest.mark.parametrize(
    ("name", "side"),
    [("Kidney_L", "Left"), ("LeftKidney", "Left"), ("kidney_left", "Left"), ("Lt Kidney", "Left"),
     ("Kidney_R", "Right"), ("RightKidney", "Right"), ("Rt Kidney", "Right"), ("lung_R", "Right")],
)  # fmt: skip
def test_dicom_seg_laterality_modifier_from_any_spelling(name: str, side: str) -> None:
    code = segment_code(name)
    assert code.type.scheme == "SCT" and code.type.meaning in ("Kidney", "Lung"), (
        "the structure, without its side"
    )
    assert code.modifier is not None and code.modifier.meaning == side


def test_no_laterality_modifier_for_a_lumbar_vertebra() -> None:
    assert segment_code("vertebrae_L1").modifier is None
