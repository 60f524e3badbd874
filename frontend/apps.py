from django.apps import AppConfig


class FrontendConfig(AppConfig):
    name = "frontend"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from frontend.selectors import push_text
        from hub.push import register_renderer

        register_renderer(push_text)
