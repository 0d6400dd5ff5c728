"""Segment codes: the shipped table against the DICOM standard's dictionary, laterality, private codes."""

from __future__ import annotations

from pathlib import Path

from pydicom.sr import _concepts_dict as dicom_concepts

from scseg.config.data_section import DataConfig
from scseg.config.load import config_from_dict, read_raw_config
from scseg.labels.codes import PRIVATE_SCHEME, code_table, roi_names, segment_code, segment_codes
from scseg.labels.label_set import read_label_set

CONFIGS = Path(__file__).parents[2] / "configs"


def test_every_table_code_is_the_dicom_standards() -> None:
    """Each code, with its meaning, is in pydicom's copy of the standard's code dictionary."""
    for _key, (category, concept) in code_table().items():
        for code in (category, concept):
            known = dicom_concepts.concepts[code.scheme]
            meanings = {
                m for entry in known.values() for value, (m, _) in entry.items() if value == code.value
            }
            assert code.meaning in meanings, f"{code} is not in the DICOM dictionary"


def test_freesurfer_names_get_snomed_codes_and_laterality() -> None:
    left, right = segment_code("Left-Hippocampus"), segment_code("Right-Hippocampus")
    assert (left.type.scheme, left.type.value) == ("SCT", "5366008") == (right.type.scheme, right.type.value)
    assert (left.modifier.meaning, right.modifier.meaning) == ("Left", "Right")
    assert segment_code("3rd-Ventricle").modifier is None
    assert segment_code("ctx-lh-insula").type.meaning == "Insula"
    assert segment_code("ctx-lh-insula").modifier.value == "7771000"
    assert segment_code("CSF").category.meaning == "Body Substance"
    assert segment_code("kidney_right").type.meaning == "Kidney"
    assert segment_code("kidney_right").modifier.meaning == "Right"


def test_whole_brain_structures_without_a_standard_code_are_exactly_the_uncoded_ones() -> None:
    names = read_label_set(CONFIGS / "whole_brain_labels.txt").names
    private = {n for n, c in zip(names, segment_codes(names), strict=True) if c.private}
    non_cortical_private = {n for n in private if not n.startswith("ctx-")}
    assert non_cortical_private == {
        "Left-Basal-Forebrain", "Right-Basal-Forebrain", "Cerebellar-Vermal-Lobules-I-V",
        "Cerebellar-Vermal-Lobules-VI-VII", "Cerebellar-Vermal-Lobules-VIII-X",
    }  # fmt: skip
    assert len(private) == len(non_cortical_private) + 62 - 4  # DKT: entorhinal and insula are coded


def test_private_codes_are_stable_distinct_and_named() -> None:
    a, b = segment_code("ctx-lh-superiorfrontal"), segment_code("ctx-lh-precuneus")
    assert a.type.scheme == PRIVATE_SCHEME and a.type.meaning == "ctx-lh-superiorfrontal"
    assert a == segment_code("ctx-lh-superiorfrontal") and a.type.value != b.type.value
    assert len(a.type.value) <= 16  # CodeValue is an SH


def _data_section(name: str) -> DataConfig:  # the shipped config, wherever its data are
    return config_from_dict(read_raw_config(CONFIGS / name), name, CONFIGS, check_data=False).data


def test_configs_code_their_structures() -> None:
    hippocampus = _data_section("hippocampus_3d.yaml")
    anterior, posterior = segment_codes(hippocampus.structure_names, hippocampus.label_codes)
    assert anterior.type.meaning == posterior.type.meaning == "Hippocampus"
    assert (anterior.modifier.meaning, posterior.modifier.meaning) == ("Anterior", "Posterior")
    organs = _data_section("ct_organs_3d.yaml")
    assert not any(c.private for c in segment_codes(organs.structure_names, organs.label_codes))
    explicit = segment_code("my organ", "SCT:64033007:Kidney")
    assert (explicit.type.value, explicit.type.meaning) == ("64033007", "Kidney")


def test_head_and_neck_organs_at_risk_get_standard_codes_in_both_spellings() -> None:
    """OpenKBP's names and their AAPM TG-263 forms: SNOMED CT codes, the side as a modifier."""
    expected = {
        "Brainstem": "119238007", "SpinalCord": "2748008", "RightParotid": "45289007", "LeftParotid": "45289007",
        "Esophagus": "32849002", "Larynx": "4596009", "Mandible": "91609006", "Parotid_R": "45289007",
        "Bone_Mandible": "91609006", "Glnd_Submand_L": "54019009",
    }  # fmt: skip
    for name, value in expected.items():
        code = segment_code(name)
        assert (code.type.scheme, code.type.value) == ("SCT", value), name
    assert segment_code("RightParotid").modifier.meaning == "Right"
    assert segment_code("Parotid_L").modifier.meaning == "Left"
    assert segment_code("Mandible").modifier is None


def test_rt_roi_names_are_tg263_in_every_spelling_and_stay_unique() -> None:
    openkbp = ["Brainstem", "SpinalCord", "RightParotid", "LeftParotid", "Esophagus", "Larynx", "Mandible"]
    tg263 = ["Brainstem", "SpinalCord", "Parotid_R", "Parotid_L", "Esophagus", "Larynx", "Bone_Mandible"]
    assert roi_names(openkbp, segment_codes(openkbp)) == tg263
    assert roi_names(tg263, segment_codes(tg263)) == tg263
    others = ["kidney_left", "Left-Hippocampus", "Hippocampus-Anterior", "ctx-lh-insula", "my organ"]
    assert roi_names(others, segment_codes(others)) == [
        "Kidney_L", "Hippocampus_L", "Hippocampus-Anterior", "ctx-lh-insula", "my organ"
    ]  # fmt: skip
    twins = ["parotid_r", "RightParotid", "Mandible"]  # two names for one structure: kept apart
    assert roi_names(twins, segment_codes(twins)) == ["parotid_r", "RightParotid", "Bone_Mandible"]
