"""AWS KMS in the stand-in: moto's KMS backend plus the checks AWS makes that moto skips.

The fleet CA key of ``iotfleet_ca_backend: kms`` is a KMS asymmetric key; the collection signs
every certificate with ``Sign`` (MessageType DIGEST, ECDSA_SHA_256). moto 5.2.5 serves KMS on the
same endpoint (its dispatcher picks the service from the request's signature), but:

- it ignores MessageType DIGEST and hashes the digest again, so its signature is not the one AWS
  returns (a certificate it signs does not verify): here DIGEST signs the given digest, as AWS;
- it signs with a Disabled or PendingDeletion key: AWS refuses (DisabledException,
  KMSInvalidStateException);
- it accepts a digest of any length: AWS wants exactly the hash's length (ValidationException),
  and a RAW message of at most 4096 bytes;
- a key of the wrong usage or spec is a ValidationException in moto, InvalidKeyUsageException
  on AWS;
- GetPublicKey leaves out KeySpec (AWS returns it beside the deprecated CustomerMasterKeySpec).

Everything else (CreateKey, CreateAlias, DescribeKey, ...) is moto's own. Operations are counted
(``calls``) for the benchmarks' calls-per-device figures.
"""
from __future__ import annotations

import base64
import collections
import json
from typing import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

TARGET_PREFIX = "TrentService."
HASHES = {"ECDSA_SHA_256": (hashes.SHA256, 32), "ECDSA_SHA_384": (hashes.SHA384, 48),
          "ECDSA_SHA_512": (hashes.SHA512, 64)}
MAX_RAW_MESSAGE = 4096


class KmsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class KeyService:
    """A WSGI layer in front of moto for the KMS operations whose AWS behaviour moto does not have."""

    def __init__(self, region_of: Callable[[dict], str], account: str):
        self.region_of = region_of
        self.account = account
        self.calls: collections.Counter[str] = collections.Counter()

    def backend(self, region: str):
        from moto.kms.models import kms_backends
        return kms_backends[self.account][region]

    def wsgi(self, moto_app):
        def app(environ, start_response):
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if not target.startswith(TARGET_PREFIX):
                return moto_app(environ, start_response)
            operation = target[len(TARGET_PREFIX):]
            self.calls[operation] += 1
            handler = getattr(self, "op_" + operation, None)
            if handler is None:
                return moto_app(environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            try:
                payload = handler(self.backend(self.region_of(environ)), json.loads(body or b"{}"))
                status, headers = "200 OK", []
            except KmsError as e:
                status, payload = f"{e.status} {e.code}", {"__type": e.code, "message": e.message}
                headers = [("x-amzn-ErrorType", e.code)]
            data = json.dumps(payload).encode()
            start_response(status, [("Content-Type", "application/x-amz-json-1.1"),
                                    ("Content-Length", str(len(data))), *headers])
            return [data]
        return app

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _key(backend, key_id: str | None):
        if not key_id:
            raise KmsError("ValidationException", "1 validation error detected: Value null at 'keyId' failed to "
                                                  "satisfy constraint: Member must not be null")
        try:
            return backend.describe_key(key_id)
        except Exception:   # moto's NotFoundException (an unknown id, ARN or alias)
            raise KmsError("NotFoundException", f"Key '{key_id}' does not exist") from None

    @staticmethod
    def _usable(key, operation: str) -> None:
        if key.key_state == "Disabled":
            raise KmsError("DisabledException", f"{key.arn} is disabled.")
        if key.key_state != "Enabled":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion." if
                           key.key_state == "PendingDeletion" else f"{key.arn} is {key.key_state}.")
        if operation == "Sign" and key.key_usage != "SIGN_VERIFY":
            raise KmsError("InvalidKeyUsageException",
                           f"KeyUsage {key.key_usage} of {key.arn} is not compatible with Sign.")

    # ------------------------------------------------------------------ operations
    def op_Sign(self, backend, p: dict) -> dict:
        key = self._key(backend, p.get("KeyId"))
        self._usable(key, "Sign")
        algorithm = p.get("SigningAlgorithm")
        if algorithm not in key.signing_algorithms:
            raise KmsError("InvalidKeyUsageException",
                           f"Signing algorithm {algorithm} is not compatible with the key spec {key.key_spec} of "
                           f"{key.arn} (it supports {', '.join(key.signing_algorithms)}).")
        message = base64.b64decode(p.get("Message") or "")
        if not message:
            raise KmsError("ValidationException", "1 validation error detected: Value at 'message' failed to "
                                                  "satisfy constraint: Member must have length greater than or "
                                                  "equal to 1")
        message_type = p.get("MessageType") or "RAW"
        if message_type not in ("RAW", "DIGEST"):
            raise KmsError("ValidationException", f"1 validation error detected: Value '{message_type}' at "
                                                  "'messageType' failed to satisfy constraint: Member must satisfy "
                                                  "enum value set: [DIGEST, RAW]")
        if not algorithm.startswith("ECDSA_"):
            # RSA keys: moto's own signing (the fleet CA is EC only)
            _arn, signature, _alg = backend.sign(key.id, message, algorithm)
        else:
            hash_cls, size = HASHES[algorithm]
            if message_type == "DIGEST" and len(message) != size:
                raise KmsError("ValidationException", f"Digest is invalid length for algorithm {algorithm}.")
            if message_type == "RAW" and len(message) > MAX_RAW_MESSAGE:
                raise KmsError("ValidationException", "1 validation error detected: Value at 'message' failed to "
                                                      "satisfy constraint: Member must have length less than or "
                                                      f"equal to {MAX_RAW_MESSAGE}")
            private = key.private_key.private_key   # moto's ECDSAPrivateKey wraps a cryptography key
            if message_type == "DIGEST":
                signature = private.sign(message, ec.ECDSA(utils.Prehashed(hash_cls())))
            else:
                signature = private.sign(message, ec.ECDSA(hash_cls()))
        return {"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(),
                "SigningAlgorithm": algorithm}

    def op_GetPublicKey(self, backend, p: dict) -> dict:
        key = self._key(backend, p.get("KeyId"))
        self._usable(key, "GetPublicKey")
        if key.key_usage not in ("SIGN_VERIFY", "ENCRYPT_DECRYPT", "KEY_AGREEMENT") or key.key_spec.startswith("SYMM"):
            raise KmsError("UnsupportedOperationException", f"{key.arn} is a symmetric key: it has no public key.")
        out = {"KeyId": key.arn, "KeySpec": key.key_spec, "CustomerMasterKeySpec": key.key_spec,
               "KeyUsage": key.key_usage,
               "PublicKey": base64.b64encode(key.private_key.public_key()).decode()}
        if key.key_usage == "SIGN_VERIFY":
            out["SigningAlgorithms"] = key.signing_algorithms
        else:
            out["EncryptionAlgorithms"] = key.encryption_algorithms
        return out
