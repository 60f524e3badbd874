from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from hub.api import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", api.urls),
    path("", include("hub.urls_accounts")),
    path("", include("frontend.urls")),
    path("", include("gatherings.urls")),
    path("", include("registry.urls")),
]

if settings.DEBUG:
    from django.urls import re_path
    from django.views.static import serve

    # Public uploads (avatars, product photos). Message images are not among them: only
    # their permission-checked view serves them (rooms/api.py: attachment_file).
    urlpatterns += [
        re_path(
            rf"^{settings.MEDIA_URL.strip('/')}/(?!attachments/)(?P<path>.*)$",
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    ]
