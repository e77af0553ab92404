"""Loaders on small fixture trees built with each corpus' real naming conventions."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossemo.data.corpora import COLUMNS, LOADERS, CorpusError, ValenceMap, load_corpus

from .conftest import tone


def touch_wav(root: Path, rel: str, rate: int = 16000) -> None:
    tone(root / rel, seconds=0.3, rate=rate)


#: One file per real corpus' naming convention (the corpora beside the checkout have thousands).
SMALL_TREES = {
    "emodb": ["wav/03a01Fa.wav", "wav/08b02Tb.wav"],
    "savee": ["DC_a01.wav", "JK_sa02.wav"],
    "emovo": ["f1/dis-f1-b1.wav", "m2/neu-m2-l3.wav"],
    "urdu": ["Angry/SM1_F10_A010.wav", "Happy/SF3_F2_H005.wav"],
}


@pytest.mark.parametrize("name", sorted(SMALL_TREES))
def test_every_loader_gives_the_common_columns_in_order(tmp_path, name):
    for rel in SMALL_TREES[name]:
        touch_wav(tmp_path, rel)
    table = load_corpus(name, tmp_path)
    assert tuple(table.columns[: len(COLUMNS)]) == COLUMNS and len(table) == len(SMALL_TREES[name])
    assert set(table["valence"]) <= {"negative", "positive"} and table["corpus"].eq(name).all()
    assert set(table["path"]) == set(SMALL_TREES[name])
    assert set(LOADERS) >= {
        "emodb",
        "savee",
        "emovo",
        "urdu",
        "iemocap",
        "aibo",
        "ravdess",
        "tess",
        "cremad",
        "manifest",
    }


def test_urdu_reads_speaker_gender_and_emotion_and_checks_the_folder(tmp_path):
    for rel in SMALL_TREES["urdu"] + ["Sad/SM1_F11_S012.wav"]:
        touch_wav(tmp_path, rel)
    table = load_corpus("urdu", tmp_path).set_index("utterance_id")
    assert table.loc["SM1_F10_A010", ["speaker", "gender", "emotion", "valence", "language"]].tolist() == [
        "SM1",
        "male",
        "anger",
        "negative",
        "urdu",
    ]
    assert table.loc["SF3_F2_H005", ["speaker", "gender", "emotion", "valence"]].tolist() == [
        "SF3",
        "female",
        "happiness",
        "positive",
    ]
    touch_wav(tmp_path, "Happy/SM2_F1_A001.wav")  # the name says anger, the folder happiness
    with pytest.raises(CorpusError, match="SM2_F1_A001.wav.*folder says happiness"):
        load_corpus("urdu", tmp_path)


def iemocap_tree(root: Path) -> None:
    label = root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    label.parent.mkdir(parents=True)
    (label.parent / "Categorical").mkdir()  # per-annotator folder: must not be read
    (label.parent / "Categorical/Ses01F_impro01_e1_cat.txt").write_text("[1 - 2]\tSes01F_impro01_F000\tang\t[]\n")
    label.write_text(
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n"
        "[10.0 - 11.0]\tSes01F_impro01_M000\tang\t[1.5, 4.0, 4.5]\n\n"
        "[12.0 - 13.0]\tSes01F_impro01_M001\tfru\t[2.0, 3.0, 3.0]\n\n"
        "[14.0 - 15.0]\tSes01F_impro01_F001\texc\t[4.0, 4.0, 3.0]\n\n"
        "[16.0 - 17.0]\tSes01F_impro01_F002\tsad\t[1.0, 2.0, 2.0]\n\n"
        "[18.0 - 19.0]\tSes01F_impro01_F003\thap\t[4.0, 3.0, 3.0]\n"
    )
    for utt in ("F000", "M000", "M001", "F001", "F002"):  # F003 has no audio
        touch_wav(root, f"Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_{utt}.wav")
    label3 = root / "Session3/dialog/EmoEvaluation/Ses03M_impro05a.txt"
    label3.parent.mkdir(parents=True)
    label3.write_text("% header\n\n[1.0 - 2.0]\tSes03M_impro05a_F025\tsad\t[1, 2, 3]\n")
    touch_wav(root, "Session3/sentences/wav/Ses03M_impro05a/Ses03M_impro05a_F025.wav")
    touch_wav(root, "Session3/sentences/wav/Ses03M_impro05a/._Ses03M_impro05a_F025.wav")


def test_iemocap_reads_label_files_parses_ids_from_the_right_and_maps_the_papers_valence(tmp_path):
    iemocap_tree(tmp_path)
    table = load_corpus("iemocap", tmp_path).set_index("utterance_id")
    assert len(table) == 6  # F003 has no wav; the Categorical/ file is not read
    assert table.loc["Ses01F_impro01_M000", "speaker"] == "Ses01M"  # speaker from the last field
    assert table.loc["Ses01F_impro01_M000", "gender"] == "male"
    assert table.loc["Ses03M_impro05a_F025", "speaker"] == "Ses03F"
    assert table.loc["Ses03M_impro05a_F025", "session"] == 3
    assert table.loc["Ses01F_impro01_F001", "emotion"] == "excitement"
    assert table["valence"].to_dict() == {
        "Ses01F_impro01_F000": "positive",
        "Ses01F_impro01_M000": "negative",
        "Ses01F_impro01_M001": "excluded",
        "Ses01F_impro01_F001": "positive",
        "Ses01F_impro01_F002": "negative",
        "Ses03M_impro05a_F025": "negative",
    }
    assert table.loc["Ses01F_impro01_F000", "path"] == "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"


def test_iemocap_unknown_code_names_the_label_file(tmp_path):
    iemocap_tree(tmp_path)
    label = tmp_path / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    label.write_text(label.read_text().replace("\tneu\t", "\tzzz\t"))
    with pytest.raises(CorpusError, match=r"Ses01F_impro01\.txt.*unknown emotion code 'zzz'"):
        load_corpus("iemocap", tmp_path)


def aibo_tree(root: Path) -> None:
    labels = root / "labels/IS2009EmotionChallenge"
    labels.mkdir(parents=True)
    chunks = {
        "Ohm_01_015_00": ("NEG", "A"),
        "Ohm_01_031_00": ("IDL", "N"),
        "Ohm_02_001_00": ("IDL", "P"),
        "Mont_01_000_00": ("NEG", "E"),
        "Mont_01_071_00": ("IDL", "R"),
    }
    (labels / "chunk_labels_2cl_corpus.txt").write_text("".join(f"{c} {two} 1\n" for c, (two, _) in chunks.items()))
    (labels / "chunk_labels_5cl_corpus.txt").write_text("".join(f"{c} {five} 0.6\n" for c, (_, five) in chunks.items()))
    for chunk in chunks:
        touch_wav(root, f"wav/{chunk}.wav")


def test_aibo_two_class_is_the_valence_task_with_school_and_child_speakers(tmp_path):
    aibo_tree(tmp_path)
    table = load_corpus("aibo", tmp_path).set_index("utterance_id")
    assert table.loc["Ohm_01_015_00", "valence"] == "negative"
    assert table.loc["Mont_01_071_00", "valence"] == "positive"
    assert table.loc["Mont_01_000_00", "speaker"] == "Mont_01"  # the child number alone repeats across schools
    assert table["speaker"].nunique() == 3
    assert table["school"].value_counts().to_dict() == {"Ohm": 3, "Mont": 2}
    five = load_corpus("aibo", tmp_path, labels="5cl").set_index("utterance_id")
    assert five["emotion"].to_dict()["Mont_01_000_00"] == "emphatic"
    assert five["valence"].value_counts().to_dict() == {"positive": 3, "negative": 2}


def test_aibo_label_without_audio_is_an_error_naming_the_line(tmp_path):
    aibo_tree(tmp_path)
    (tmp_path / "wav/Ohm_02_001_00.wav").unlink()
    with pytest.raises(CorpusError, match=r"chunk_labels_2cl_corpus\.txt:3.*no audio for chunk Ohm_02_001_00"):
        load_corpus("aibo", tmp_path)


def test_ravdess_keeps_audio_speech_only_and_takes_gender_from_the_actor_number(tmp_path):
    for name in (
        "Actor_01/03-01-05-02-01-01-01.wav",
        "Actor_12/03-01-06-01-02-01-12.wav",
        "Actor_12/03-01-02-01-01-01-12.wav",
        "Actor_12/03-02-03-01-01-01-12.wav",  # song
        "extra/Actor_01/03-01-05-02-01-01-01.wav",
    ):  # a Kaggle duplicate
        touch_wav(tmp_path, name, rate=48000)
    table = load_corpus("ravdess", tmp_path).set_index("utterance_id")
    assert sorted(table.index) == ["03-01-02-01-01-01-12", "03-01-05-02-01-01-01", "03-01-06-01-02-01-12"]
    assert table.loc["03-01-06-01-02-01-12", ["emotion", "gender", "speaker"]].tolist() == [
        "fear",
        "female",
        "Actor_12",
    ]
    assert table.loc["03-01-05-02-01-01-01", "gender"] == "male"
    assert table.loc["03-01-02-01-01-01-12", "valence"] == "positive"  # calm


def test_tess_takes_the_label_from_the_file_and_maps_oa_to_oaf(tmp_path):
    for name in (
        "OAF_angry/OAF_back_angry.wav",
        "OAF_Pleasant_surprise/OAF_bar_ps.wav",
        "OAF_neutral/OA_bite_neutral.wav",
        "YAF_fear/YAF_base_fear.wav",
        "YAF_sad/YAF_bath_Sad.wav",
    ):
        touch_wav(tmp_path, name, rate=24414)
    table = load_corpus("tess", tmp_path)
    assert set(table["speaker"]) == {"OAF", "YAF"}
    assert dict(zip(table["path"], table["emotion"]))["OAF_Pleasant_surprise/OAF_bar_ps.wav"] == "surprise"
    assert table["valence"].value_counts().to_dict() == {"negative": 3, "positive": 2}


def test_cremad_reads_gender_from_demographics_and_the_one_letter_level(tmp_path):
    for name in ("AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1040_ITH_SAD_X.wav", "AudioWAV/1002_IEO_HAP_HI.wav"):
        touch_wav(tmp_path, name)
    (tmp_path / "VideoDemographics.csv").write_text(
        '"ActorID","Age","Sex","Race","Ethnicity"\n1001,51,"Male","Caucasian","Not Hispanic"\n'
        '1002,21,"Female","Caucasian","Not Hispanic"\n'
    )
    table = load_corpus("cremad", tmp_path).set_index("utterance_id")
    assert table["gender"].to_dict() == {
        "1001_DFA_ANG_XX": "male",
        "1002_IEO_HAP_HI": "female",
        "1040_ITH_SAD_X": "unknown",
    }
    assert table.loc["1040_ITH_SAD_X", "valence"] == "negative"


def test_cremad_unparsable_name_fails_loudly(tmp_path):
    touch_wav(tmp_path, "AudioWAV/1001_DFA_XYZ.wav")
    with pytest.raises(CorpusError, match=r"1001_DFA_XYZ\.wav.*cannot parse"):
        load_corpus("cremad", tmp_path)


def test_csv_manifest_with_relative_paths_and_canonical_emotions(tmp_path):
    touch_wav(tmp_path, "clips/a.wav")
    touch_wav(tmp_path, "clips/b.wav")
    (tmp_path / "manifest.csv").write_text(
        "path,emotion,speaker,language\nclips/a.wav,Anger,s1,dutch\nclips/b.wav,calm,s2,dutch\n"
    )
    table = load_corpus("manifest", tmp_path, corpus="mine")
    assert table.columns[: len(COLUMNS)].tolist() == list(COLUMNS)
    assert table[["corpus", "language", "emotion", "valence"]].values.tolist() == [
        ["mine", "dutch", "anger", "negative"],
        ["mine", "dutch", "calm", "positive"],
    ]


def test_csv_manifest_unknown_label_names_the_line_and_the_vocabulary(tmp_path):
    touch_wav(tmp_path, "a.wav")
    (tmp_path / "m.csv").write_text("path,emotion,speaker,language\na.wav,grumpy,s1,dutch\n")
    with pytest.raises(CorpusError, match=r"m\.csv:2.*unknown emotion 'grumpy'.*anger"):
        load_corpus("manifest", tmp_path / "m.csv")


def test_csv_manifest_reads_common_spellings_and_a_mapping_from_params(tmp_path):
    from crossemo.config import corpus_config
    from crossemo.errors import ConfigError

    words = ["happy", "Angry", "sad", "joy", "surprised", "disgusted", "fearful", "elated"]
    for i in range(len(words)):
        touch_wav(tmp_path, f"u{i}.wav")
    rows = "".join(f"u{i}.wav,{word},s1,dutch\n" for i, word in enumerate(words))
    (tmp_path / "m.csv").write_text("path,emotion,speaker,language\n" + rows)
    with pytest.raises(CorpusError, match=r"m\.csv:9.*unknown emotion 'elated'.*a common spelling"):
        load_corpus("manifest", tmp_path / "m.csv")
    params = {
        "corpora": {
            "mine": {"loader": "manifest", "root": str(tmp_path / "m.csv"), "emotions": {"Elated": "happiness"}}
        }
    }
    config = corpus_config(params, "mine")
    table = load_corpus(config.loader, config.root, **config.options)
    assert table["emotion"].tolist() == [
        "happiness",
        "anger",
        "sadness",
        "happiness",
        "surprise",
        "disgust",
        "fear",
        "happiness",
    ]
    params["corpora"]["mine"]["emotions"] = {"elated": "glee"}
    with pytest.raises(CorpusError, match="maps 'elated' to 'glee'"):
        load_corpus("manifest", tmp_path / "m.csv", **corpus_config(params, "mine").options)
    params["corpora"]["mine"]["loader"] = "emodb"
    with pytest.raises(ConfigError, match="corpora.mine.emotions maps a manifest's words"):
        corpus_config(params, "mine")


def test_missing_corpus_and_unknown_loader_say_what_was_expected(tmp_path):
    with pytest.raises(CorpusError, match=r"corpus folder not found.*wav/ folder.*params.yaml"):
        load_corpus("emodb", tmp_path / "nowhere")
    with pytest.raises(CorpusError, match=r"unknown corpus 'nope'.*emodb"):
        load_corpus("nope", tmp_path)


def test_savee_reads_both_layouts_and_prefers_sa_su_over_a(tmp_path):
    touch_wav(tmp_path / "flat", "DC_sa01.wav")
    touch_wav(tmp_path / "flat", "DC_a01.wav")
    touch_wav(tmp_path / "orig", "AudioData/JK/su02.wav")
    touch_wav(tmp_path / "orig", "AudioData/JK/a01.wav")
    flat = load_corpus("savee", tmp_path / "flat")
    orig = load_corpus("savee", tmp_path / "orig")
    assert dict(zip(flat["utterance_id"], flat["emotion"])) == {"DC_a01": "anger", "DC_sa01": "sadness"}
    assert dict(zip(orig["utterance_id"], orig["emotion"])) == {"JK_a01": "anger", "JK_su02": "surprise"}


def test_valence_override_and_contradictions_are_rejected(tmp_path):
    touch_wav(tmp_path, "wav/03a01Wa.wav")
    touch_wav(tmp_path, "wav/03a01La.wav")
    table = load_corpus("emodb", tmp_path, valence={"negative": ["anger"], "positive": ["neutral"]})
    assert dict(zip(table["emotion"], table["valence"])) == {"anger": "negative", "boredom": "excluded"}
    with pytest.raises(ValueError, match="both negative and positive"):
        ValenceMap.from_dict({"negative": ["anger"], "positive": ["anger"]})
    with pytest.raises(ValueError, match="unknown emotions"):
        ValenceMap.from_dict({"negative": ["rage"]})
