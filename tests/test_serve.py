"""`tunecard serve`: the real server (uvicorn) in a subprocess on a free loopback port, a real HTTP client.

What must hold: concurrent requests answered as `Predictor.predict` answers the same texts (batched together or
not), every refusal a JSON error with its code and HTTP status, /metadata reporting the run's own files, and a
SIGTERM that lets the requests in flight finish before the process exits 0.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_TEXTS, WNUT_SAMPLE, saved_classifier

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
TIMEOUT = 120  # seconds for one HTTP call: the machine running the suite may be shared and slow
# Scores may differ by this much between a text predicted in one batch and in another: under bf16 a batch's
# shape changes the kernels' blocking and so the rounding (the recheck keeps labels and offsets fp32's).
SCORE_TOLERANCE = 0.02


def _get(url: str, **options):
    return httpx.get(url, timeout=TIMEOUT, **options)


def _post(url: str, **options):
    return httpx.post(url, timeout=TIMEOUT, **options)


class Server:
    """`python -m tunecard serve FOLDER --port 0 ...` until it prints its address; stderr kept for asserts."""

    def __init__(self, folder: Path, *options: str):
        self.process = subprocess.Popen([sys.executable, "-m", "tunecard", "serve", str(folder), "--port", "0",
                                         *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.found = threading.Event()
        self.url = None
        threading.Thread(target=self._read, daemon=True).start()
        if not self.found.wait(180) or self.url is None:
            self.stop()
            raise AssertionError(f"the server did not start: {''.join(self.lines)}")

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            match = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
            if match and self.url is None:
                self.url = match.group(1)
                self.found.set()
        self.found.set()  # the process ended

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def ner_folder(tiny_bert_cased, tmp_path_factory) -> Path:
    """A token classifier whose widened head finds entities in most sentences (and meets bf16 close calls)."""
    return saved_classifier(tiny_bert_cased, tmp_path_factory.mktemp("serve-ner"), True, NER_LABELS)


@pytest.fixture(scope="module")
def ner_server(ner_folder):
    server = Server(ner_folder, "--max-batch-size", "16", "--max-wait-ms", "20", "--max-text-length", "400",
                    "--max-texts", "8")
    yield server
    server.stop()


def _texts() -> list[str]:
    sentences, words = [], []
    for line in (WNUT_SAMPLE / "dev.conll").read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split()[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    texts = [t for t in SAMPLE_TEXTS if len(t) <= 400] + [s for s in sentences if len(s) <= 400]
    return texts[:72]


def _same(served: list, expected: list) -> None:
    """Entities equal in label, offsets and surface; scores within SCORE_TOLERANCE."""
    assert len(served) == len(expected)
    for got, want in zip(served, expected):
        assert [(e["label"], e["start"], e["end"], e["text"]) for e in got] == \
               [(e["label"], e["start"], e["end"], e["text"]) for e in want]
        for e, f in zip(got, want):
            assert abs(e["score"] - f["score"]) <= SCORE_TOLERANCE


def test_64_concurrent_requests_get_predicts_answers(ner_server, ner_folder):
    from tunecard.inference.predictor import load

    texts = _texts()
    # 56 requests of one text and 8 of two: 64 concurrent requests, 72 texts.
    bodies = [{"text": t} for t in texts[:56]] + [{"texts": texts[56 + 2 * i:58 + 2 * i]} for i in range(8)]

    async def send_all():
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=ner_server.url, timeout=TIMEOUT, limits=limits) as client:
            return await asyncio.gather(*(client.post("/predict", json=body) for body in bodies))

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * 64
    served = []
    for body, response in zip(bodies, responses):
        answer = response.json()
        items = answer["predictions"] if "texts" in body else [answer]
        assert [item["text"] for item in items] == (body["texts"] if "texts" in body else [body["text"]])
        served.extend(item["entities"] for item in items)
    expected = load(ner_folder).predict(texts)  # the same defaults as the server: bf16 where the CPU has it
    assert sum(map(len, expected)) > 20, "the model should find entities for the comparison to mean something"
    _same(served, expected)

    health = _get(f"{ner_server.url}/health").json()
    assert health["status"] == "ok" and health["requests"] >= 64 and health["texts"] >= 72
    assert 1 < health["largest_batch"] <= 16  # concurrent requests were predicted together, never above the max
    assert health["batches"] < health["requests"]


def test_one_text_answers_as_tunecard_predict_prints(ner_server, ner_folder):
    from tunecard.inference.predictor import load

    text = "Angela Merkel met Emmanuel Macron in Paris ."
    answer = _post(f"{ner_server.url}/predict", json={"text": text}).json()
    assert set(answer) == {"text", "entities"} and answer["text"] == text
    _same([answer["entities"]], load(ner_folder).predict([text]))
    assert _post(f"{ner_server.url}/predict", json={"texts": []}).json() == {"predictions": []}


@pytest.mark.parametrize(("body", "status", "code"), [
    (b'{"text": "unclosed', 400, "E501"),
    (b"\xff\xfe not utf-8", 400, "E501"),
    (b"", 400, "E501"),
    (b'["a list"]', 422, "E502"),
    (b'{"text": 5}', 422, "E502"),
    (b'{"texts": "not a list"}', 422, "E502"),
    (b'{"texts": ["ok", null]}', 422, "E502"),
    (b'{"text": "a", "texts": ["b"]}', 422, "E502"),
    (b'{"txt": "typo"}', 422, "E502"),
    (b'{"text": "lone \\ud800 surrogate"}', 422, "E502"),
    (json.dumps({"text": "x" * 401}).encode(), 413, "E503"),
    (json.dumps({"texts": ["a"] * 9}).encode(), 413, "E504"),
    (json.dumps({"text": "x" * 40_000}).encode(), 413, "E505"),  # over 8 x (400 x 6 + 8) + 16 KiB
])
def test_bad_requests_get_json_errors_with_codes(ner_server, body, status, code):
    response = _post(f"{ner_server.url}/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["fix"]


def test_limits_are_inclusive_and_unknown_routes_are_json(ner_server):
    response = _post(f"{ner_server.url}/predict", json={"texts": ["Paris " * 66 + "abcd"] * 8})  # 400 chars
    assert response.status_code == 200 and len(response.json()["predictions"]) == 8
    assert _get(f"{ner_server.url}/nowhere").json()["error"]["code"] == "E506"
    response = _get(f"{ner_server.url}/predict")
    assert response.status_code == 405 and response.json()["error"]["code"] == "E506"
    assert _get(f"{ner_server.url}/health").status_code == 200  # still serving after all the refusals


def test_metadata_of_a_plain_model_folder(ner_server):
    info = _get(f"{ner_server.url}/metadata").json()
    assert info["task"] == "token-classification" and info["labels"] == NER_LABELS
    assert info["entity_types"] == ["LOC", "ORG", "PER"] and info["headline"] is None  # no metrics.json here
    assert info["decoding"] == "argmax"  # no train_config.yaml: each word's best tag, as pipeline
    assert info["batching"] == {"max_batch_size": 16, "max_wait_ms": 20.0}
    assert info["limits"]["max_text_length"] == 400 and info["limits"]["max_texts"] == 8


@pytest.fixture(scope="module")
def classifier_run(tiny_bert_cased, tmp_path_factory) -> Path:
    """A text-classification run trained for a few steps: train_config.yaml and metrics.json as train writes them."""
    from tunecard.config import build_config
    from tunecard.pipeline import train

    folder = tmp_path_factory.mktemp("serve-cls")
    rows = [("loved it, great film", "positive"), ("boring and far too long", "negative"),
            ("a wonderful cast", "positive"), ("the plot makes no sense", "negative")] * 8
    data = folder / "reviews.csv"
    data.write_text("review,verdict\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    config = build_config(None, dict(task="text-classification", model=str(tiny_bert_cased), train=str(data),
                                     validation=str(data), output=str(folder / "run"), max_steps=2,
                                     text_column="review", label_column="verdict", precision="fp32",
                                     save_strategy="no"))
    return train(config).output


def test_metadata_reports_the_cards_headline(classifier_run, tiny_bert_cased):
    metrics = json.loads((classifier_run / "metrics.json").read_text(encoding="utf-8"))
    server = Server(classifier_run)
    try:
        info = _get(f"{server.url}/metadata").json()
        answer = _post(f"{server.url}/predict", json={"text": "a wonderful cast"}).json()
    finally:
        server.stop()
    assert info["task"] == "text-classification" and info["labels"] == ["negative", "positive"]
    assert info["base_model"] == str(tiny_bert_cased)  # a local folder: its path (a hub id where there is one)
    assert info["dataset"] == "reviews"  # the training file's stem (its folder is a temporary one)
    assert info["headline"]["split"] == "validation"
    for key, value in info["headline"].items():
        if key != "split":
            assert value == metrics["validation"][key]
    assert {"loss", "accuracy", "f1"} <= set(info["headline"])
    assert set(answer) == {"text", "prediction"} and answer["prediction"]["label"] in ("negative", "positive")
    assert server.process.returncode == 0


def test_sigterm_lets_requests_in_flight_finish(ner_folder):
    # Requests wait up to 3 s for a batch: SIGTERM arrives while all of them are in flight.
    server = Server(ner_folder, "--max-wait-ms", "3000", "--max-batch-size", "64")
    texts = [f"Angela Merkel visited Paris on day {i} ." for i in range(8)]
    results: dict = {}

    async def send_all():
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
            return await asyncio.gather(*(client.post("/predict", json={"text": t}) for t in texts))

    sender = threading.Thread(target=lambda: results.update(responses=asyncio.run(send_all())))
    try:
        sender.start()
        deadline = time.monotonic() + 30
        while _get(f"{server.url}/health").json()["waiting"] < len(texts):
            assert time.monotonic() < deadline, "the requests never reached the server"
            time.sleep(0.02)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the server stops listening at once, and answers what it holds
        with pytest.raises(httpx.ConnectError):
            _get(f"{server.url}/health")
        sender.join(60)
        assert server.process.wait(60) == 0
    finally:
        server.stop()
    responses = results["responses"]
    assert [r.status_code for r in responses] == [200] * len(texts)
    assert [r.json()["text"] for r in responses] == texts
    assert f"stopped; {len(texts)} requests ({len(texts)} texts) answered in 1 batches" in server.stderr


def test_serve_refuses_a_busy_port_before_loading_the_model(tmp_path):
    import socket

    from tunecard.errors import ServeError
    from tunecard.serve.server import run

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServeError) as error:
            run(tmp_path / "no-model-needed", port=port)
    assert error.value.code == "E510" and "--port" in error.value.fix
    with pytest.raises(ServeError) as error:
        run(tmp_path, port=0, max_batch_size=0, max_wait_ms=-1)
    assert error.value.code == "E512" and "--max-batch-size 0" in str(error.value)


def test_serve_without_its_packages_names_the_extra(tmp_path, monkeypatch):
    from tunecard.errors import ServeError
    from tunecard.serve.server import run

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    with pytest.raises(ServeError) as error:
        run(tmp_path, port=0)
    assert error.value.code == "E511" and "tunecard[serve]" in error.value.fix


def test_batcher_groups_waiting_requests_up_to_the_max():
    from tunecard.serve.batcher import DynamicBatcher

    seen: list[list[str]] = []

    def predict(texts):
        seen.append(list(texts))
        time.sleep(0.05)
        return [text.upper() for text in texts]

    async def main():
        batcher = DynamicBatcher(predict, max_batch_size=4, max_wait_ms=50)
        await batcher.start()
        sizes = [1, 2, 1, 3, 1, 6, 1]
        answers = await asyncio.gather(*(batcher.submit([f"r{i}t{j}" for j in range(n)])
                                         for i, n in enumerate(sizes)))
        await batcher.stop()
        return sizes, answers, batcher.stats

    sizes, answers, stats = asyncio.run(main())
    assert answers == [[f"R{i}T{j}" for j in range(n)] for i, n in enumerate(sizes)]  # each gets its own, in order
    assert all(len(batch) <= 4 for batch in seen if len(batch) != 6)  # the request of 6 runs alone
    assert [6] == [len(batch) for batch in seen if len(batch) > 4]
    assert sorted(t for batch in seen for t in batch) == sorted(f"r{i}t{j}" for i, n in enumerate(sizes)
                                                                for j in range(n))  # each text predicted once
    assert stats.requests == len(sizes) and stats.batches == len(seen) < len(sizes)


def test_app_mounted_in_another_app_starts_its_batcher_itself(ner_folder):
    """create_app's lifespan does not run when it is mounted: the batcher starts on the first request."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    from tunecard.inference.predictor import load
    from tunecard.serve.app import create_app

    predictor = load(ner_folder)
    parent = Starlette(routes=[Mount("/ner", create_app(predictor, ner_folder))])
    with TestClient(parent) as client:
        answers = [client.post("/ner/predict", json={"text": text}).json() for text in SAMPLE_TEXTS[:3]]
    assert [a["text"] for a in answers] == SAMPLE_TEXTS[:3]
    _same([a["entities"] for a in answers], predictor.predict(SAMPLE_TEXTS[:3]))


def test_a_failing_prediction_is_a_json_500_and_the_server_goes_on(ner_folder):
    from starlette.testclient import TestClient

    from tunecard.inference.predictor import load
    from tunecard.serve.app import create_app

    predictor = load(ner_folder)
    predict = predictor.predict
    calls = []

    def fails_once(texts):
        calls.append(texts)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return predict(texts)

    predictor.predict = fails_once
    with TestClient(create_app(predictor, ner_folder), raise_server_exceptions=False) as client:
        failed = client.post("/predict", json={"text": "Angela Merkel visited Paris ."})
        answered = client.post("/predict", json={"text": "Angela Merkel visited Paris ."})
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "E507" and "out of memory" in failed.json()["error"]["message"]
    assert answered.status_code == 200 and answered.json()["entities"] == predict(["Angela Merkel visited Paris ."])[0]


def test_a_client_alone_is_not_kept_waiting_and_overlapping_requests_still_batch():
    """After a batch of one request, the next request starts at once instead of waiting max_wait_ms for company;
    once requests overlap again, they are gathered into batches as before."""
    from tunecard.serve.batcher import DynamicBatcher

    seen: list[int] = []

    def predict(texts):
        seen.append(len(texts))
        return list(texts)

    async def main():
        batcher = DynamicBatcher(predict, max_batch_size=8, max_wait_ms=300)
        await batcher.start()
        await batcher.submit(["first"])  # nothing known yet: it waits its 300 ms
        started = time.monotonic()
        for i in range(5):  # one at a time, each after the last answer
            await batcher.submit([f"alone {i}"])
        sequential = time.monotonic() - started
        await asyncio.gather(*(batcher.submit([f"together {i}"]) for i in range(6)))
        await batcher.stop()
        return sequential

    sequential = asyncio.run(main())
    assert sequential < 0.3  # five requests answered in less than one max_wait (each would wait 300 ms before)
    assert seen[:6] == [1] * 6 and sum(seen[6:]) == 6 and len(seen) < 12  # the concurrent six share batches


def test_a_batch_starts_once_the_last_batchs_clients_are_all_back():
    """Four clients, each sending its next request when its last is answered: after the first batch (which waits its
    max_wait_ms, as nothing is known yet), every batch holds the four and starts as soon as the fourth is back,
    not max_wait_ms after the first (6 rounds would take 6 x 300 ms that way)."""
    from tunecard.serve.batcher import DynamicBatcher

    seen: list[int] = []

    def predict(texts):
        seen.append(len(texts))
        time.sleep(0.01)
        return list(texts)

    async def client(batcher, name):
        for i in range(6):
            assert await batcher.submit([f"{name} {i}"]) == [f"{name} {i}"]

    async def main():
        batcher = DynamicBatcher(predict, max_batch_size=64, max_wait_ms=300)
        await batcher.start()
        started = time.monotonic()
        await asyncio.gather(*(client(batcher, name) for name in "abcd"))
        elapsed = time.monotonic() - started
        await batcher.stop()
        return elapsed

    elapsed = asyncio.run(main())
    assert seen == [4] * 6  # every round is one batch of the four clients
    assert elapsed < 0.3 + 0.5  # the first batch's wait, then no more waiting (6 x 0.3 s before)


def test_two_halves_of_the_clients_merge_into_one_batch():
    """Eight clients, four of which arrive while the first four are predicted: instead of the two halves taking
    turns (each arriving while the other runs, batches of 4 for good), the batch after the first waits for the
    answered four to come back and holds all eight, and so does every batch after it."""
    from tunecard.serve.batcher import DynamicBatcher

    seen: list[int] = []

    def predict(texts):
        seen.append(len(texts))
        time.sleep(0.05)
        return list(texts)

    async def client(batcher, name, rounds):
        for i in range(rounds):
            assert await batcher.submit([f"{name} {i}"]) == [f"{name} {i}"]

    async def main():
        batcher = DynamicBatcher(predict, max_batch_size=64, max_wait_ms=200)
        await batcher.start()
        first = [asyncio.create_task(client(batcher, name, 6)) for name in "abcd"]
        while not seen:  # the first four are being predicted
            await asyncio.sleep(0.005)
        second = [asyncio.create_task(client(batcher, name, 5)) for name in "efgh"]
        await asyncio.gather(*first, *second)
        await batcher.stop()

    asyncio.run(main())
    assert seen == [4] + [8] * 5  # before: [4, 4, 4, ...], the halves taking turns


def test_the_server_loads_and_runs_the_model_in_one_thread(ner_folder, monkeypatch):
    """Each thread that runs torch gets its own OpenMP team, and two teams on two cores make every call slower
    (a lone sentence 6.8-7.1 ms against 12.6-14.3 on the Xeon): the model loads where it predicts."""
    import uvicorn
    from starlette.testclient import TestClient

    from tunecard.inference import predictor as predictor_module
    from tunecard.serve.server import run

    threads = {"load": set(), "predict": set()}
    original_load = predictor_module.load

    def load(*args, **options):
        threads["load"].add(threading.get_ident())
        predictor = original_load(*args, **options)
        predict = predictor.predict

        def recorded(texts):
            threads["predict"].add(threading.get_ident())
            return predict(texts)

        predictor.predict = recorded
        return predictor

    answers = []

    def serve(self, sockets=None):  # uvicorn's loop stood in for by a test client on the same app
        with TestClient(self.config.app) as client:
            answers.extend(client.post("/predict", json={"text": text}).json() for text in SAMPLE_TEXTS[:3])

    monkeypatch.setattr(predictor_module, "load", load)
    monkeypatch.setattr(uvicorn.Server, "run", serve)
    run(ner_folder, port=0)
    assert [answer["text"] for answer in answers] == SAMPLE_TEXTS[:3]
    assert len(threads["load"]) == 1 and threads["predict"] == threads["load"]
    assert threading.get_ident() not in threads["load"]
