"""Errors as the official `openai` client raises them from `razor serve`: BadRequestError (400) for out-of-range or
unsupported fields, NotFoundError (404, code model_not_found, as OpenAI answers) for an unknown model,
AuthenticationError (401) for a wrong key on a server started with --api-key, APIStatusError 413 for a body over
the 1 MiB limit, the OpenAI error body each carries; and models.list() naming the served model."""
import pytest

from openai_support import API_KEY, Server, make_client, model_id, openai


def test_models_list(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == [model_id()]
    assert models.data[0].object == "model"


def expect(exc_type, status, call, param=None, code=None):
    with pytest.raises(exc_type) as info:
        call()
    e = info.value
    assert e.status_code == status
    # OpenAI's error body: {"error": {"message", "type", "param", "code"}}; the client hands over its inside.
    assert isinstance(e.body, dict), e.body
    assert isinstance(e.body.get("message"), str) and e.body["message"]
    assert isinstance(e.body.get("type"), str) and e.body["type"]
    if param is not None:
        assert e.param == param, e.body
    if code is not None:
        assert e.code == code, e.body
    return e


def comp(client, **kw):
    return lambda: client.completions.create(**{"model": model_id(), "prompt": "Hello", "max_tokens": 2, **kw})


def chat(client, **kw):
    return lambda: client.chat.completions.create(
        **{"model": model_id(), "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, **kw})


@pytest.mark.parametrize("kw, param", [
    ({"temperature": 5}, "temperature"),
    ({"temperature": -0.5}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 10**9}, "max_tokens"),  # beyond any test model's context
    ({"n": 2}, "n"),
    ({"presence_penalty": 1.0}, "presence_penalty"),  # only 0 is supported
    ({"frequency_penalty": 3.0}, "frequency_penalty"),  # out of OpenAI's [-2, 2]
    ({"stop": ["s"] * 17}, "stop"),
])
def test_bad_completion_fields(client, kw, param):
    expect(openai.BadRequestError, 400, comp(client, **kw), param=param)


def test_max_tokens_beyond_context_code(client):
    expect(openai.BadRequestError, 400, comp(client, max_tokens=10**9), param="max_tokens",
           code="context_length_exceeded")
    expect(openai.BadRequestError, 400, chat(client, max_completion_tokens=10**9), param="max_completion_tokens",
           code="context_length_exceeded")


@pytest.mark.parametrize("kw, param", [
    ({"temperature": 5}, "temperature"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "robot", "content": "Hi"}]}, "messages"),
    ({"max_tokens": 10**9}, "max_tokens"),
])
def test_bad_chat_fields(client, kw, param):
    expect(openai.BadRequestError, 400, chat(client, **kw), param=param)


def test_razor_kv_extension_without_profile(client):
    # The per-request KV-policy extension: a razor policy on a full-KV server (no head profile loaded) is refused.
    expect(openai.BadRequestError, 400, comp(client, extra_body={"razor": {"kv": "razor"}}), param="razor.kv")
    expect(openai.BadRequestError, 400, comp(client, extra_body={"razor": {"kv": "nonsense"}}), param="razor.kv")


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_unknown_model_is_404(client, endpoint):
    call = comp(client, model="gpt-nonexistent") if endpoint == "completions" else chat(client, model="gpt-nonexistent")
    expect(openai.NotFoundError, 404, call, param="model", code="model_not_found")


def test_unknown_route_is_404(server):
    c = openai.OpenAI(base_url=server.url + "/v2", api_key=API_KEY, max_retries=0, timeout=30)
    try:
        expect(openai.NotFoundError, 404, c.models.list)
    finally:
        c.close()


def test_body_over_limit_is_413(client):
    e = expect(openai.APIStatusError, 413, comp(client, prompt="a" * (1 << 20)))
    assert not isinstance(e, (openai.BadRequestError, openai.InternalServerError))


def test_errors_leave_server_serving(client):
    r = client.completions.create(model=model_id(), prompt="Hello", max_tokens=3, temperature=0)
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"


@pytest.fixture(scope="module")
def key_server(tmp_path_factory):
    s = Server(["--kv", "full", "--api-key", "right-key"], tmp_path_factory.mktemp("serve_key") / "serve.log",
               start_timeout=180)
    yield s
    s.stop()


def test_wrong_api_key(key_server):
    wrong = make_client(key_server, api_key="wrong-key")
    try:
        for call in (wrong.models.list, comp(wrong), chat(wrong)):
            e = expect(openai.AuthenticationError, 401, call)
            assert e.code == "invalid_api_key"
    finally:
        wrong.close()
    right = make_client(key_server, api_key="right-key")
    try:
        assert [m.id for m in right.models.list().data] == [model_id()]
        r = comp(right)()
        assert r.usage.completion_tokens == 2
    finally:
        right.close()
    # /health stays open (documented: every route but /health needs the key).
    status, _, body = key_server.request("GET", "/health")
    assert status == 200, body
