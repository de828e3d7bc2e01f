"""We-Math and VisuLogic data: the generated samples (hub schema / hub layout, determinism, commands) and the
loaders in every layout users have (hub id, hub parquet, the We-Math GitHub json, the VisuLogic folder with
images.zip or extracted images, VLMEvalKit's TSVs), with clear errors on bad rows."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vthinker_plugins.data.benchmarks import load_benchmark, visulogic_local, wemath_options
from vthinker_plugins.data.sources import DataError
from vthinker_plugins.data.visulogic_sample import CATEGORIES, make_visulogic_sample
from vthinker_plugins.data.visulogic_sample import build_rows as visulogic_rows
from vthinker_plugins.data.wemath_sample import build_rows as wemath_rows
from vthinker_plugins.data.wemath_sample import make_wemath_sample

WEMATH_HUB_COLUMNS = ["ID", "split", "knowledge concept", "question", "option", "answer", "image_path", "key",
                      "question number", "knowledge concept description"]


@pytest.fixture(scope="module")
def wemath_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_wemath_sample(tmp_path_factory.mktemp("wemath") / "wemath.parquet", two_step=2, three_step=1)


@pytest.fixture(scope="module")
def visulogic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_visulogic_sample(tmp_path_factory.mktemp("visulogic") / "VisuLogic", n=6)


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# --------------------------------------------------------------------------- generated samples

def test_wemath_sample_is_the_hub_schema_with_whole_groups(wemath_file: Path) -> None:
    table = pq.read_table(wemath_file)
    assert table.column_names == WEMATH_HUB_COLUMNS and table.num_rows == 2 * 3 + 4
    image = table.column("image_path")[0].as_py()
    assert set(image) == {"bytes", "path"} and image["bytes"].startswith(b"\x89PNG")  # embedded, as on the hub
    rows = table.drop(["image_path"]).to_pylist()
    keys = {(r["ID"], r["key"]) for r in rows}
    assert keys == {("2steps_1", "2steps_1"), ("2steps_1", "2steps_2"), ("2steps_1", "2steps_multi"),
                    ("2steps_2", "2steps_1"), ("2steps_2", "2steps_2"), ("2steps_2", "2steps_multi"),
                    ("3steps_1", "3steps_1"), ("3steps_1", "3steps_2"), ("3steps_1", "3steps_3"),
                    ("3steps_1", "3steps_multi")}
    assert [r["question number"] for r in rows] == list(range(1, 11))
    for row in rows:  # the gold letter names the option holding the computed answer
        options = wemath_options(row)
        assert options[-1] == "No correct answer" and row["answer"] in "ABCD"
    assert [r["question"] for r in wemath_rows(2, 1, seed=1)] != [r["question"] for r in wemath_rows(2, 1, seed=2)]
    assert [r["option"] for r in wemath_rows(2, 1, seed=1)] == [r["option"] for r in wemath_rows(2, 1, seed=1)]


def test_visulogic_sample_is_the_hub_layout(visulogic_dir: Path) -> None:
    rows = [json.loads(line) for line in (visulogic_dir / "data.jsonl").read_text().splitlines()]
    assert [set(r) for r in rows] == [{"id", "question", "label", "image_path", "tag"}] * 6
    assert [r["tag"] for r in rows] == list(CATEGORIES)
    with zipfile.ZipFile(visulogic_dir / "images.zip") as zf:
        assert sorted(zf.namelist()) == sorted(r["image_path"] for r in rows)
        assert all(zf.read(r["image_path"]).startswith(b"\x89PNG") for r in rows)
    again = visulogic_rows(6, seed=0)
    assert [r["label"] for r in again] == [r["label"] for r in rows]
    assert again[0]["image"].tobytes() == visulogic_rows(1, seed=0)[0]["image"].tobytes()


def test_commands(tmp_path: Path, vthinker_cmd: list[str], cli_env: dict[str, str]) -> None:
    proc = subprocess.run([*vthinker_cmd, "make-wemath-sample", str(tmp_path / "w"), "--two-step", "1",
                           "--three-step", "1"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "7 problems" in proc.stdout and pq.read_table(tmp_path / "w" / "wemath_sample.parquet").num_rows == 7
    proc = subprocess.run([*vthinker_cmd, "make-visulogic-sample", str(tmp_path / "v"), "--n", "3"], env=cli_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "3 puzzles" in proc.stdout and (tmp_path / "v" / "images.zip").is_file()


# --------------------------------------------------------------------------- loaders

def test_wemath_from_hub_parquet_github_json_and_vlmevalkit_tsv(wemath_file: Path, tmp_path: Path) -> None:
    by_parquet = load_benchmark("wemath", data=str(wemath_file))
    assert [s.id for s in by_parquet[:3]] == ["2steps_1-1", "2steps_2-1", "2steps_1-2"]
    first = by_parquet[0]
    assert first.task == "wemath" and first.answer in "ABCD" and first.options[-1] == "No correct answer"
    assert first.meta["group"] == "2steps_1" and first.meta["step"] == "2steps_1" and first.meta["knowledge_concept"]
    assert "\nOptions:\nA. " in first.question and first.question.endswith("E. No correct answer")
    assert load_benchmark(str(wemath_file), limit=2)[1].id == "2steps_2-1"  # format detected from the columns

    # The GitHub layout: testmini.json (a JSON array) with image paths relative to its folder.
    rows = pq.read_table(wemath_file).to_pylist()
    github = tmp_path / "We-Math" / "data"
    for row in rows:
        path = github / "2steps" / "image" / f"{row['question number']}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(row["image_path"]["bytes"])
        row["image_path"] = str(path.relative_to(github))
    (github / "testmini.json").write_text(json.dumps(rows, indent=1))
    by_json = load_benchmark("wemath", data=str(github))
    assert [(s.id, s.answer, s.options) for s in by_json] == [(s.id, s.answer, s.options) for s in by_parquet]
    assert by_json[0].images[0].tobytes() == first.images[0].tobytes()

    # VLMEvalKit's WeMath.tsv: options in columns A..E, images base64.
    tsv_rows = []
    for i, (row, sample) in enumerate(zip(rows, by_parquet, strict=True)):
        options = dict(zip("ABCDE", wemath_options(row), strict=True))
        tsv_rows.append({"index": i, "ID": row["ID"], "key": row["key"], "question": row["question"], **options,
                         "answer": row["answer"], "image": _b64(sample.images[0]),
                         "knowledge concept": row["knowledge concept"]})
    pd.DataFrame(tsv_rows).to_csv(tmp_path / "WeMath.tsv", sep="\t", index=False)
    by_tsv = load_benchmark("wemath", data=str(tmp_path / "WeMath.tsv"))
    assert [(s.id, s.answer, s.options, s.question) for s in by_tsv] == \
        [(s.id, s.answer, s.options, s.question) for s in by_parquet]
    assert by_tsv[3].images[0].tobytes() == by_parquet[3].images[0].tobytes()


def test_visulogic_from_zip_folder_extracted_folder_tsv_and_hub_id(visulogic_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    by_zip = load_benchmark("visulogic", data=str(visulogic_dir))
    assert len(by_zip) == 6 and by_zip[0].task == "visulogic" and by_zip[0].options == ["A", "B", "C", "D"]
    assert by_zip[0].meta["category"] == "Quantitative Reasoning" and by_zip[0].answer in "ABCD"
    assert by_zip[0].question.endswith("Answer with the letter of the correct choice: A, B, C, D.")
    assert load_benchmark(str(visulogic_dir))[5].id == by_zip[5].id  # format detected from the columns

    extracted = tmp_path / "extracted"
    extracted.mkdir()
    shutil.copy(visulogic_dir / "data.jsonl", extracted / "data.jsonl")
    with zipfile.ZipFile(visulogic_dir / "images.zip") as zf:
        zf.extractall(extracted)
    by_files = load_benchmark("visulogic", data=str(extracted))
    assert [s.images[0].tobytes() for s in by_files] == [s.images[0].tobytes() for s in by_zip]

    frame = pd.DataFrame([{"index": i, "image": _b64(s.images[0]), "question": s.meta["raw_question"],
                           "answer": s.answer, "category": s.meta["category"]} for i, s in enumerate(by_zip)])
    frame.to_csv(tmp_path / "VisuLogic.tsv", sep="\t", index=False)
    by_tsv = load_benchmark("visulogic", data=str(tmp_path / "VisuLogic.tsv"))
    assert [(s.answer, s.meta["category"], s.question) for s in by_tsv] == \
        [(s.answer, s.meta["category"], s.question) for s in by_zip]

    # The hub id: the repository's data.jsonl and images.zip are fetched (the hub itself cannot be reached
    # here: the download is replaced by the local copy), then read as the local layout.
    import huggingface_hub

    calls = []

    def snapshot_download(**kwargs) -> str:
        calls.append(kwargs)
        return str(visulogic_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    by_hub = load_benchmark("visulogic", limit=2)
    assert [s.id for s in by_hub] == [s.id for s in by_zip[:2]]
    assert calls == [{"repo_id": "VisuLogic/VisuLogic", "repo_type": "dataset",
                      "allow_patterns": ["data.jsonl", "images.zip"]}]
    assert visulogic_local(str(visulogic_dir)) == str(visulogic_dir)


def test_bad_rows_name_the_row_and_field(wemath_file: Path, visulogic_dir: Path, tmp_path: Path) -> None:
    rows = pq.read_table(wemath_file).to_pylist()

    def wemath_with(**change) -> Path:
        path = tmp_path / f"bad{len(list(tmp_path.iterdir()))}.parquet"
        pd.DataFrame([rows[0] | change, *rows[1:]]).to_parquet(path)
        return path

    with pytest.raises(DataError, match=r"row 0 \(ID=2steps_1\): field 'answer' must be one option letter"):
        load_benchmark("wemath", data=str(wemath_with(answer="F")))
    with pytest.raises(DataError, match=r"row 0 \(ID=2steps_1\): field 'key' must look like '2steps_1'"):
        load_benchmark("wemath", data=str(wemath_with(key="step one")))
    with pytest.raises(DataError, match=r"row 0 \(ID=2steps_1\): field 'option' is not a list of lettered options"):
        load_benchmark("wemath", data=str(wemath_with(option="three; four")))
    with pytest.raises(DataError, match=r"duplicate sample id '2steps_1-1'"):
        load_benchmark("wemath", data=str(_duplicated(rows, tmp_path)))
    pd.DataFrame([{k: v for k, v in r.items() if k != "key"} for r in rows]).to_parquet(tmp_path / "nokey.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) \['key'\] for benchmark 'wemath'"):
        load_benchmark("wemath", data=str(tmp_path / "nokey.parquet"))

    data = [json.loads(line) for line in (visulogic_dir / "data.jsonl").read_text().splitlines()]
    bad = tmp_path / "vl_bad"
    bad.mkdir()
    shutil.copy(visulogic_dir / "images.zip", bad / "images.zip")
    for change, message in (({"label": "E"}, r"field 'label' must be one option letter of A, B, C, D, got 'E'"),
                            ({"tag": ""}, r"field 'tag' \(the reasoning category\) must be a non-empty string"),
                            ({"image_path": "images/nope.png"}, r"image 'images/nope.png' is neither a file under")):
        (bad / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [data[0], data[1] | change]))
        with pytest.raises(DataError, match=rf"data.jsonl row 1 \(line 2\) \(id=vl-0-0001\).*{message}"):
            load_benchmark("visulogic", data=str(bad))


def _duplicated(rows: list[dict], tmp_path: Path) -> Path:
    path = tmp_path / "duplicated.parquet"
    pd.DataFrame([*rows, rows[0]]).to_parquet(path)
    return path
