"""What a client sends to a guarded service: the bearer token, and Modal's proxy headers for a
service deployed behind Modal's proxy auth (deploy/modal)."""

from protocol.auth import auth_headers


def test_the_bearer_token_and_the_modal_proxy_token():
    assert auth_headers(None, env={}) == {}
    assert auth_headers("k", env={}) == {"Authorization": "Bearer k"}
    proxy = {"MODAL_PROXY_KEY": "wk-1", "MODAL_PROXY_SECRET": "ws-2"}
    assert auth_headers("k", env=proxy) == {
        "Authorization": "Bearer k",
        "Modal-Key": "wk-1",
        "Modal-Secret": "ws-2",
    }
    # Half a proxy token is none.
    assert auth_headers(None, env={"MODAL_PROXY_KEY": "wk-1"}) == {}


def test_the_llm_client_sends_the_modal_proxy_headers(monkeypatch):
    from bots.llm import LLMConfig, NemotronLLMService

    monkeypatch.setenv("MODAL_PROXY_KEY", "wk-1")
    monkeypatch.setenv("MODAL_PROXY_SECRET", "ws-2")
    llm = NemotronLLMService(LLMConfig(url="https://x.modal.run/v1", model="m", api_key="k"))
    headers = llm._client.default_headers
    assert headers["Modal-Key"] == "wk-1" and headers["Modal-Secret"] == "ws-2"
    assert llm._client.auth_headers == {"Authorization": "Bearer k"}
