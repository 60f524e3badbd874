from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatheringsConfig(AppConfig):
    name = "gatherings"
    label = "gatherings"
    verbose_name = _("Gatherings")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        from gatherings import embedded

        # The embedded default runs the reminder worker inside the hub's process,
        # started by the first request (see `embedded.ensure_started`).
        request_started.connect(embedded.on_request_started, dispatch_uid="gatherings-embedded")
