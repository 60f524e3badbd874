from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatheringsConfig(AppConfig):
    name = "gatherings"
    label = "gatherings"
    verbose_name = _("Gatherings")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gatherings import hooks

        hooks.register()
