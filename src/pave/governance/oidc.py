"""OpenID Connect sign-in: the authorisation code flow with PKCE, as a relying party.

The portal sends the browser to the provider's authorisation endpoint with a fresh ``state``,
``nonce`` and PKCE challenge (S256), then exchanges the code it gets back (with the verifier and,
for a confidential client, the client secret) for an ID token, whose signature (the provider's
JWKS), issuer, audience, expiry and nonce are checked before any of its claims is believed. The
user-info endpoint adds claims the ID token leaves out (many providers keep ``groups`` there).

The provider is configured by the platform's admins (settings ``oidc_*``), so requests to it do not
pass the egress guard meant for user-given URLs.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from pave.errors import ConfigError, Unauthenticated, Unavailable

_TIMEOUT = 10.0
_DISCOVERY_TTL = 3600.0


@dataclass(frozen=True)
class OidcSettings:
    """What the platform's settings say about the provider and this client."""

    issuer: str
    client_id: str
    redirect_uri: str
    client_secret: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email", "groups")
    identity_claim: str = "preferred_username"
    groups_claim: str = "groups"


@dataclass(frozen=True)
class Provider:
    """The provider's endpoints, from its discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None


@dataclass(frozen=True)
class Login:
    """One sign-in attempt: kept in the browser (an HttpOnly cookie) between the two redirects."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Login:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


_providers: dict[str, tuple[float, Provider]] = {}
_lock = threading.Lock()


def discover(issuer: str) -> Provider:
    """The provider's endpoints (cached for an hour); Unavailable when it does not answer."""
    with _lock:
        hit = _providers.get(issuer)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        document = httpx.get(url, timeout=_TIMEOUT).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable(
            f"the sign-in provider at {issuer} does not answer ({type(exc).__name__})",
            hint="sign in with a token meanwhile; ask the platform team to check oidc_issuer",
        ) from exc
    if document.get("issuer") != issuer:
        raise ConfigError(
            f"the provider's discovery document names issuer {document.get('issuer')!r}, not {issuer!r}",
            hint="set oidc_issuer to exactly the provider's issuer",
        )
    try:
        provider = Provider(
            issuer=issuer,
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            jwks_uri=document["jwks_uri"],
            userinfo_endpoint=document.get("userinfo_endpoint"),
        )
    except KeyError as exc:
        raise ConfigError(f"the provider's discovery document has no {exc.args[0]}") from exc
    with _lock:
        _providers[issuer] = (time.monotonic() + _DISCOVERY_TTL, provider)
    return provider


def authorization_url(provider: Provider, settings: OidcSettings, login: Login) -> str:
    """Where to send the browser: the code flow, S256 PKCE, this attempt's state and nonce."""
    query = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": settings.redirect_uri,
        "scope": " ".join(settings.scopes),
        "state": login.state,
        "nonce": login.nonce,
        "code_challenge": login.challenge,
        "code_challenge_method": "S256",
    }
    return f"{provider.authorization_endpoint}?{urlencode(query)}"


def _refused(reason: str) -> Unauthenticated:
    return Unauthenticated(f"the sign-in provider's answer was refused: {reason}", hint="sign in again")


def claims_of(provider: Provider, settings: OidcSettings, code: str, login: Login) -> dict[str, Any]:
    """Exchange ``code`` for tokens, check the ID token, and return its claims with the user info's.

    Raises:
        Unauthenticated: the exchange failed, or the ID token is not valid for this client and attempt.
    """
    import jwt

    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": settings.redirect_uri,
        "code_verifier": login.verifier,
        "client_id": settings.client_id,
    }
    auth = (settings.client_id, settings.client_secret) if settings.client_secret else None
    try:
        answer = httpx.post(provider.token_endpoint, data=form, auth=auth, timeout=_TIMEOUT)
    except httpx.HTTPError as exc:
        raise Unavailable(f"the sign-in provider does not answer ({type(exc).__name__})") from exc
    if answer.status_code != 200:
        raise _refused(f"the code exchange answered {answer.status_code}")
    tokens = answer.json()
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise _refused("no ID token")
    try:
        key = jwt.PyJWKClient(provider.jwks_uri, timeout=int(_TIMEOUT)).get_signing_key_from_jwt(id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key.key,
            algorithms=["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
            audience=settings.client_id,
            issuer=provider.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise _refused(f"the ID token is not valid ({exc})") from exc
    if not secrets.compare_digest(str(claims.get("nonce", "")), login.nonce):
        raise _refused("the ID token belongs to another sign-in (nonce)")
    access_token = tokens.get("access_token")
    if provider.userinfo_endpoint and isinstance(access_token, str):
        info = httpx.get(
            provider.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}, timeout=_TIMEOUT
        )
        if info.status_code == 200:
            extra = info.json()
            if extra.get("sub") == claims["sub"]:  # never another user's claims
                claims = {**extra, **claims}
    return claims


def identity_and_groups(claims: dict[str, Any], settings: OidcSettings) -> tuple[str, list[str]]:
    """The Pave identity (``identity_claim``, else ``email``, else ``sub``) and the groups claim."""
    identity = claims.get(settings.identity_claim) or claims.get("email") or claims["sub"]
    raw = claims.get(settings.groups_claim) or []
    groups = [raw] if isinstance(raw, str) else [str(g) for g in raw if isinstance(g, str | int)]
    return str(identity)[:200], groups
