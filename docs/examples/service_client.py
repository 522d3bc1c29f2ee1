"""A service calling an API with a token of its own, from the client-credentials grant."""

from typing import Any

from authlib.integrations.requests_client import OAuth2Session


def call_api(token_url: str, api_url: str, resource: str) -> Any:
    """GET ``api_url`` as the service ``reporting-service``, with a token for ``resource``."""
    client = OAuth2Session("reporting-service", "its-secret", scope="api:read")
    client.fetch_token(token_url, grant_type="client_credentials", resource=resource)
    return client.get(api_url).json()
