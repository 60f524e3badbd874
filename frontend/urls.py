"""The web pages. The log-in, sign-up, profile and log-out pages live in hub."""

from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/", views.rooms, name="rooms"),
    path("rooms/<int:room_id>/", views.room, name="room"),
    path("rooms/<int:room_id>/meeting/", views.meeting, name="meeting"),
    path("rooms/<int:room_id>/follow", views.room_follow, name="room_follow"),
    path("rooms/<int:room_id>/leave", views.room_leave, name="room_leave"),
    path("rooms/<int:room_id>/slow-mode", views.room_slow_mode, name="room_slow_mode"),
    path("direct/", views.direct_open, name="direct_open"),
    path("groups/", views.group_create, name="group_create"),
    path("me/", views.me, name="me"),
    path("manifest.webmanifest", views.manifest, name="manifest"),
    path("sw.js", views.service_worker, name="service_worker"),
    path("offline/", views.offline, name="offline"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/push", views.push_subscription, name="push_subscription"),
    path("notifications/settings", views.push_preferences, name="push_preferences"),
    path("notifications/email", views.digest_preference, name="digest_preference"),
    path("notifications/read", views.notifications_read, name="notifications_read"),
    path("notifications/<int:notification_id>/", views.notification_open, name="notification_open"),
    path("moderation/", views.moderation, name="moderation"),
    path("moderation/reports/<int:report_id>", views.report_resolve, name="report_resolve"),
]
