"""Print a new VAPID key pair for Web Push, as the environment variables the hub reads."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management.base import BaseCommand
from py_vapid import b64urlencode


class Command(BaseCommand):
    help = "Print a new VAPID key pair (HIRFA_VAPID_PRIVATE_KEY, HIRFA_VAPID_PUBLIC_KEY)."

    def handle(self, *args: Any, **options: Any) -> None:
        private = ec.generate_private_key(ec.SECP256R1())
        public = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.stdout.write(f"HIRFA_VAPID_PRIVATE_KEY={b64urlencode(private.private_numbers().private_value.to_bytes(32, 'big'))}")
        self.stdout.write(f"HIRFA_VAPID_PUBLIC_KEY={b64urlencode(public)}")
