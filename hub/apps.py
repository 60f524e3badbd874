from django.apps import AppConfig


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "Hirfa"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        from hub import jobs, personal_data, revocation
        from hub.tasks import digests_send

        personal_data.part_register(personal_data.HUB_PART)
        jobs.periodic_register(digests_send)
        # The embedded default runs the job worker inside the hub's process, started by
        # the first request (see `jobs.embedded_start`).
        request_started.connect(jobs.on_request_started, dispatch_uid="hub-embedded-worker")
        revocation.connect_signals()
