from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RegistryConfig(AppConfig):
    name = "registry"
    label = "registry"
    verbose_name = _("Artisans' registry")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from registry import hooks

        hooks.register()
