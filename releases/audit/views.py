"""Audit API: signed checkpoints and the key to check them, for anyone; proofs of single events, for staff."""

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import ErrorOutput
from releases.access.token_scopes import DOWNLOAD
from releases.audit import signing
from releases.audit.models import AuditCheckpoint
from releases.audit.proofs import event_proof
from releases.audit.sealer import checkpoint_document
from releases.audit.serializers import (
    CheckpointOutput,
    CheckpointQuery,
    ProofOutput,
    ProofQuery,
    PublicKeyOutput,
)
from releases.roles import role_permission

ReadsAudit = role_permission("releases.view_auditevent", to="read the audit trail")


class CheckpointListView(ListAPIView):
    """Every signed checkpoint, newest first. Save one: it proves later that the history before it stands."""

    token_scope = DOWNLOAD

    permission_classes = [AllowAny]
    serializer_class = CheckpointOutput

    @extend_schema(parameters=[CheckpointQuery])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = CheckpointQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        checkpoints = AuditCheckpoint.objects.order_by("-seq")
        if (seq := query.validated_data.get("seq")) is not None:
            checkpoints = checkpoints.filter(seq=seq)
        return checkpoints

    def get_serializer(self, *args, **kwargs):
        if args:
            args = ([checkpoint_document(c) for c in args[0]], *args[1:])
        return super().get_serializer(*args, **kwargs)


class PublicKeyView(APIView):
    """The Ed25519 public key that signs the audit checkpoints."""

    token_scope = DOWNLOAD

    permission_classes = [AllowAny]

    @extend_schema(responses=PublicKeyOutput)
    def get(self, request: Request) -> Response:
        key = signing.public_key()
        return Response(PublicKeyOutput({"key_id": key.key_id, "algorithm": signing.ALGORITHM,
                                         "public_key_pem": key.pem}).data)


class EventProofView(APIView):
    """One event, every event after it up to a checkpoint, and that checkpoint (releases/audit/proofs.py)."""

    permission_classes = [ReadsAudit]

    @extend_schema(parameters=[ProofQuery], responses={200: ProofOutput, 404: ErrorOutput, 409: ErrorOutput})
    def get(self, request: Request, event_id: int) -> Response:
        query = ProofQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        proof = event_proof(event_id=event_id, checkpoint_seq=query.validated_data.get("checkpoint"))
        return Response(ProofOutput(proof).data)
