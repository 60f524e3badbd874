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
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
