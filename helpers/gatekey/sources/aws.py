"""The aws-secrets-manager source: a secret (or one key of a JSON secret) from AWS Secrets Manager.

boto3 (``pip install 'gatekey[aws]'``) with the standard AWS configuration: environment, shared
config and credentials files, SSO, the profile's ``profile`` and ``region``. One attempt per run
(no SDK retries: the run's deadline is the budget, and gatekey's negative cache is the backoff).
"""

from __future__ import annotations

import json
from typing import Any

from gatekey import logs
from gatekey.checks import FAIL, OK, Check
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import (
    AccessDenied,
    ConfigError,
    CredentialNotFound,
    DeadlineExceeded,
    HelperError,
    InteractionRequired,
    SourceUnavailable,
    TemporaryFailure,
)
from gatekey.kinds import Linker, ProbeKit
from gatekey.token import Token

CONNECT_TIMEOUT = 5.0
NOT_FOUND = frozenset({"ResourceNotFoundException"})
DENIED = frozenset({"AccessDeniedException", "AccessDenied", "DecryptionFailure"})
TEMPORARY = frozenset(
    {"ThrottlingException", "InternalServiceError", "ServiceUnavailable", "RequestTimeout"}
)
SIGNED_OUT = frozenset(
    {"ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException", "InvalidClientTokenId"}
)


class AwsSecretsManagerSource:
    def __init__(self, profile: Profile, links: Linker | None = None) -> None:
        del links  # a secret's name and region name no other profile
        self.profile = profile
        self.name = profile.name
        self.secret_id: str = profile.values["secret_id"]
        self.json_key: str | None = profile.values["json_key"]

    def probe(self, kit: ProbeKit) -> Check:
        """The AWS SDK is installed (reading the secret is the token check's job)."""
        import importlib.util

        if importlib.util.find_spec("boto3") is None:
            fix = "install it into gatekey's environment: pip install 'gatekey[aws]'"
            return Check("source", FAIL, "the AWS SDK (boto3) is not installed", [fix])
        return Check("source", OK, "the AWS SDK is installed; the token check reads the secret")

    def fetch(self, run: RunContext) -> Token:
        try:
            import boto3
            import botocore.config
            import botocore.exceptions as bx
        except ImportError:
            raise SourceUnavailable(
                "the AWS SDK is not installed",
                profile=self.name,
                fix="install gatekey with its aws extra: pip install 'gatekey[aws]'",
            ) from None
        from gatekey.deadlines import call_within, request_budget

        aws_profile = self.profile.values["profile"]

        def late() -> HelperError:
            # botocore's read timeout bounds each read, not the answer (nor the credential
            # chain it walks first): the whole call has the run's deadline minus the reserve.
            return DeadlineExceeded(
                f"AWS Secrets Manager did not answer within the {run.name} time limit "
                f"({run.timeout:g} s)",
                profile=self.name,
            )

        try:
            left = request_budget(run, "asking AWS Secrets Manager")
            session = boto3.session.Session(
                profile_name=aws_profile, region_name=self.profile.values["region"]
            )
            client = session.client(  # no network yet: credentials are resolved by the call
                "secretsmanager",
                config=botocore.config.Config(
                    connect_timeout=min(CONNECT_TIMEOUT, left),
                    read_timeout=left,
                    retries={"total_max_attempts": 1},
                ),
            )
            answer = call_within(
                lambda: client.get_secret_value(SecretId=self.secret_id),
                request_budget(run, "asking AWS Secrets Manager"),
                late,
            )
        except bx.ProfileNotFound:
            raise ConfigError(
                f"there is no AWS profile {aws_profile!r} in the AWS config",
                file=self.profile.origins.get("profile"),
                profile=self.name,
                key="profile",
            ) from None
        except bx.NoRegionError:
            raise ConfigError(
                "no AWS region: set region in this profile, or AWS_REGION / the AWS profile's "
                "region",
                file=self.profile.origins.get("region"),
                profile=self.name,
                key="region",
            ) from None
        except bx.NoCredentialsError:
            raise InteractionRequired(
                "no AWS credentials found; sign in (aws sso login"
                + (f" --profile {aws_profile}" if aws_profile else "")
                + ") or configure credentials (aws configure)",
                profile=self.name,
            ) from None
        except (bx.SSOError, bx.TokenRetrievalError, bx.UnauthorizedSSOTokenError):
            raise InteractionRequired(
                "the AWS SSO session has expired",
                profile=self.name,
                fix="run: aws sso login" + (f" --profile {aws_profile}" if aws_profile else ""),
            ) from None
        except (bx.ConnectTimeoutError, bx.ReadTimeoutError):
            raise late() from None
        except bx.SSLError:
            raise TemporaryFailure(
                "TLS verification failed for AWS Secrets Manager",
                profile=self.name,
                fix="if a proxy inspects TLS, set AWS_CA_BUNDLE (or ca_bundle in the AWS config "
                "file) to its CA certificate",
            ) from None
        except bx.EndpointConnectionError:
            raise TemporaryFailure(
                "cannot reach AWS Secrets Manager",
                profile=self.name,
                fix="check the network or VPN",
            ) from None
        except bx.ClientError as e:
            raise self._client_error(e.response) from None
        except bx.BotoCoreError as e:
            raise TemporaryFailure(
                f"AWS SDK error ({type(e).__name__})", profile=self.name
            ) from None
        value = self._value(answer)
        logs.register_secret(value)
        return Token.from_expires_in(
            value, None, source="aws-secrets-manager", cache_ttl=self.profile.values["cache_ttl"]
        )

    def _client_error(self, response: dict[str, Any]) -> HelperError:
        error = response.get("Error") or {}
        code = str(error.get("Code") or "")
        message = " ".join(str(error.get("Message") or "").split())[:200]
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        secret = self.secret_id
        if code in NOT_FOUND:
            return CredentialNotFound(
                f"AWS Secrets Manager has no secret {secret} (in this account and region)",
                profile=self.name,
            )
        if code in DENIED:
            return AccessDenied(
                f"AWS denied reading {secret} ({code}); the identity needs "
                "secretsmanager:GetSecretValue on it (and kms:Decrypt on its key)",
                profile=self.name,
            )
        if code in SIGNED_OUT:
            return InteractionRequired(
                f"AWS rejected the credentials ({code}); sign in again (aws sso login) or "
                "refresh them",
                profile=self.name,
            )
        if code in TEMPORARY or (isinstance(status, int) and status >= 500):
            return TemporaryFailure(
                f"AWS Secrets Manager answered {code or status}",
                profile=self.name,
                fix="try again later",
            )
        if code == "InvalidRequestException":
            return CredentialNotFound(
                f"AWS Secrets Manager cannot serve {secret}: {message}", profile=self.name
            )
        return HelperError(f"AWS Secrets Manager error {code}: {message}", profile=self.name)

    def _value(self, answer: dict[str, Any]) -> str:
        text = answer.get("SecretString")
        if text is None and isinstance(answer.get("SecretBinary"), (bytes, bytearray)):
            try:
                text = bytes(answer["SecretBinary"]).decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if "SecretString" not in answer and "SecretBinary" not in answer:
            raise TemporaryFailure(  # botocore parsed no API answer: an error page, a cut-off
                "AWS Secrets Manager's answer held no secret (not the API's JSON)",
                profile=self.name,
                fix="try again later",
            )
        if not isinstance(text, str):
            raise HelperError(f"the secret {self.secret_id} is binary, not text", profile=self.name)
        if self.json_key is None:
            return text.strip()
        try:
            data = json.loads(text)
        except ValueError:
            raise self._key_error("is not JSON") from None
        value = data.get(self.json_key) if isinstance(data, dict) else None
        if not isinstance(value, str):
            if isinstance(data, dict):
                names = ", ".join(sorted(map(str, data))) or "none"
                raise self._key_error(f"has no string at {self.json_key!r} (keys: {names})")
            raise self._key_error("is not a JSON object")
        return value.strip()

    def _key_error(self, why: str) -> ConfigError:
        return ConfigError(
            f"the secret {self.secret_id} {why}",
            file=self.profile.origins.get("json_key"),
            profile=self.name,
            key="json_key",
        )
