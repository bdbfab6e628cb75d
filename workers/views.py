"""Jobs API for staff: submit, list, inspect, cancel. Thin views over workers.services and workers.jobs."""

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.client_ip import client_ip
from releases.governance.second_factor import OTP_PARAMETER, SecondFactorForChanges
from releases.roles import CANCEL_JOB, SUBMIT_JOB, role_permission
from workers import services
from workers.errors import JobNotFound
from workers.models import Job
from workers.serializers import JobInputSerializer, JobSerializer


def _job(job_id: int) -> Job:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise JobNotFound(f"No job {job_id}.")
    return job


JOB_ROLES = services.JOB_ROLES
CanSeeJobs = role_permission("workers.view_job", to="see jobs", role=JOB_ROLES)
CanSubmitJobs = role_permission(SUBMIT_JOB, to="submit jobs", role=JOB_ROLES)
CanCancelJobs = role_permission(CANCEL_JOB, to="cancel jobs", role=JOB_ROLES)


class JobListCreateView(ListAPIView):
    """Jobs, newest first: training, generation, detection."""

    serializer_class = JobSerializer
    queryset = Job.objects.all()

    def get_permissions(self):
        if self.request.method == "POST":
            return [CanSubmitJobs(), SecondFactorForChanges()]
        return [CanSeeJobs()]

    @extend_schema(request=JobInputSerializer, responses={201: JobSerializer}, parameters=[OTP_PARAMETER])
    def post(self, request: Request) -> Response:
        """Submit a job (train, generate or detect) to the workers' queues."""
        data = JobInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.job_submit(kind=data.validated_data["kind"], params=data.validated_data["params"],
                                  user=request.user, ip=client_ip(request))
        return Response(JobSerializer(job).data, status=201)


class JobDetailView(APIView):
    """One job: its kind, settings, state, progress and results."""

    permission_classes = [CanSeeJobs]

    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobSerializer(_job(job_id)).data)


class JobCancelView(APIView):
    """Cancel a queued or running job; a running one stops at its next checkpoint."""

    permission_classes = [CanCancelJobs, SecondFactorForChanges]

    @extend_schema(request=None, responses=JobSerializer, parameters=[OTP_PARAMETER])
    def post(self, request: Request, job_id: int) -> Response:
        return Response(JobSerializer(services.job_cancel(job=_job(job_id), user=request.user,
                                                          ip=client_ip(request))).data)
