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
        from hub import jobs
        from registry.tasks import enquiry_replies_mail

        jobs.periodic_register(enquiry_replies_mail)
        from registry.services import new_piece_job_register
        from registry.tasks import new_piece_followers_tell

        new_piece_job_register(lambda product_id: new_piece_followers_tell.enqueue(product_id=product_id))
        from django.db.backends.signals import connection_created

        from registry.search_text import sqlite_functions_register

        connection_created.connect(sqlite_functions_register, dispatch_uid="registry.search_text")
        from django.db.models.signals import post_delete, post_save

        from hub.models import Trade, Wilaya
        from registry.search import reference_changed

        for model in (Trade, Wilaya):
            for signal in (post_save, post_delete):
                signal.connect(reference_changed, sender=model, dispatch_uid=f"registry.search.{model.__name__}")
