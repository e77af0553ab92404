"""Loaders on the real corpora in ../shared/corpora: exactly the published counts."""

from __future__ import annotations

import pytest

from crossemo.data.corpora import load_corpus

pytestmark = pytest.mark.corpora


def test_emodb_counts_speakers_and_genders(shared_corpora):
    table = load_corpus("emodb", shared_corpora / "emodb")
    assert len(table) == 535
    letters = table["utterance_id"].str[5].value_counts().to_dict()
    assert letters == {"W": 127, "L": 81, "E": 46, "A": 69, "F": 71, "T": 62, "N": 79}
    assert sorted(table["speaker"].unique()) == ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    genders = table.drop_duplicates("speaker").set_index("speaker")["gender"]
    assert sorted(genders[genders == "male"].index) == ["03", "10", "11", "12", "15"]
    assert table["valence"].value_counts().to_dict() == {"negative": 127 + 81 + 46 + 69 + 62, "positive": 71 + 79}


def test_savee_counts_and_speakers(shared_corpora):
    table = load_corpus("savee", shared_corpora / "savee")
    assert len(table) == 480
    assert sorted(table["speaker"].unique()) == ["DC", "JE", "JK", "KL"]
    counts = table["emotion"].value_counts().to_dict()
    assert counts["neutral"] == 120 and all(counts[e] == 60 for e in counts if e != "neutral")


def test_emovo_counts_and_speakers(shared_corpora):
    table = load_corpus("emovo", shared_corpora / "emovo")
    assert len(table) == 588
    assert sorted(table["speaker"].unique()) == ["f1", "f2", "f3", "m1", "m2", "m3"]
    assert set(table["emotion"].value_counts()) == {84}
    assert table.groupby("speaker")["gender"].first().to_dict() == {
        "f1": "female",
        "f2": "female",
        "f3": "female",
        "m1": "male",
        "m2": "male",
        "m3": "male",
    }


def test_urdu_counts_and_speaker_tokens(shared_corpora):
    table = load_corpus("urdu", shared_corpora / "urdu")
    assert len(table) == 400
    assert set(table["emotion"].value_counts()) == {100}
    assert table["speaker"].str.fullmatch(r"S[MF]\d+").all()
    assert (table["speaker"].str[1].map({"M": "male", "F": "female"}) == table["gender"]).all()
