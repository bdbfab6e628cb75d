"""Shapes of the audit API: published checkpoints, the public key, proofs."""

from rest_framework import serializers


class CheckpointOutput(serializers.Serializer):
    seq = serializers.IntegerField(help_text="The number of events sealed so far; the head is event `seq`'s hash.")
    head = serializers.CharField(help_text="Lowercase hex SHA-256.")
    sealed_at = serializers.CharField(help_text="ISO 8601 UTC, exactly the string signed.")
    key_id = serializers.CharField(help_text="Lowercase hex SHA-256 of the raw Ed25519 public key.")
    signature = serializers.CharField(
        help_text='Base64 Ed25519 signature over the UTF-8 canonical JSON {"head","key_id","sealed_at","seq"} '
                  "(keys sorted, separators `,` and `:`, no whitespace).")


class CheckpointQuery(serializers.Serializer):
    seq = serializers.IntegerField(required=False, min_value=1, help_text="Only the checkpoint at this seq.")


class PublicKeyOutput(serializers.Serializer):
    key_id = serializers.CharField()
    algorithm = serializers.CharField()
    public_key_pem = serializers.CharField()


class ProofQuery(serializers.Serializer):
    checkpoint = serializers.IntegerField(required=False, min_value=1,
                                          help_text="The checkpoint's seq; default: the first covering the event.")


class ProofEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    hash = serializers.CharField()
    fields = serializers.JSONField(help_text="What the hash covers, as hashed.")


class ProofOutput(serializers.Serializer):
    event = ProofEventOutput()
    following = serializers.ListField(child=serializers.JSONField(),
                                      help_text="The fields of every later event up to the checkpoint, in order.")
    checkpoint = CheckpointOutput()
