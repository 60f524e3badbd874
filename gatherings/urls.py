"""Pages and calendar feeds of gatherings (the REST endpoints live in `api.py`)."""

from django.urls import path

from gatherings import views

OCCURRENCE = "gatherings/<int:gathering_id>/occurrences/<str:key>"
REPLAY = "gatherings/<int:gathering_id>/replays/<int:recording_id>"

urlpatterns = [
    path("gatherings/", views.agenda, name="gatherings_agenda"),
    path("gatherings/new", views.gathering_new, name="gathering_new"),
    path("gatherings/<int:gathering_id>/", views.gathering_detail, name="gathering_detail"),
    path("gatherings/<int:gathering_id>/edit", views.gathering_edit, name="gathering_edit"),
    path("gatherings/<int:gathering_id>/rsvp", views.rsvp, name="gathering_rsvp"),
    path("gatherings/<int:gathering_id>/cancel", views.gathering_cancel, name="gathering_cancel"),
    path(f"{OCCURRENCE}/move", views.occurrence_move, name="gathering_occurrence_move"),
    path(f"{OCCURRENCE}/cancel", views.occurrence_cancel, name="gathering_occurrence_cancel"),
    path(f"{OCCURRENCE}/split", views.gathering_split, name="gathering_split"),
    path(f"{OCCURRENCE}/attendees.csv", views.attendees_csv, name="gathering_attendees_csv"),
    path(f"{OCCURRENCE}/join", views.occurrence_join, name="gathering_occurrence_join"),
    path(f"{OCCURRENCE}/attendance", views.occurrence_attendance, name="gathering_attendance"),
    path(f"{OCCURRENCE}/attendance.csv", views.occurrence_attendance_csv, name="gathering_attendance_csv"),
    path("gatherings/<int:gathering_id>/materials", views.material_upload, name="gathering_material_upload"),
    path("gatherings/<int:gathering_id>/materials/<int:material_id>", views.material_file, name="gathering_material"),
    path(
        "gatherings/<int:gathering_id>/materials/<int:material_id>/thumbnail",
        views.material_file,
        {"thumbnail": True},
        name="gathering_material_thumbnail",
    ),
    path(
        "gatherings/<int:gathering_id>/materials/<int:material_id>/delete",
        views.material_remove,
        name="gathering_material_delete",
    ),
    path(f"{REPLAY}/", views.replay_page, name="gathering_replay"),
    path(f"{REPLAY}/chapters.vtt", views.replay_chapters, name="gathering_replay_chapters"),
    path(f"{REPLAY}/delete", views.replay_delete, name="gathering_replay_delete"),
    path(f"{REPLAY}/<str:name>", views.replay_file, name="gathering_replay_file"),
    path("gatherings/<int:gathering_id>.ics", views.gathering_ics, name="gathering_ics"),
    path("gatherings/room/<int:room_id>.ics", views.room_ics, name="gatherings_room_ics"),
    path("gatherings/feed/<str:token>.ics", views.personal_ics, name="gatherings_personal_ics"),
    path("gatherings/feed/revoke", views.feed_revoke, name="gatherings_feed_revoke"),
]
