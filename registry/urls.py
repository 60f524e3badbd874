"""Pages of the registry (the REST endpoints live in `api.py`)."""

from django.urls import path

from registry import views

urlpatterns = [
    path("registry/", views.census_me, name="registry_me"),
    path("registry/cards/<int:user_id>/photo", views.card_photo, name="registry_card_photo"),
    path("registry/review/", views.review_queue, name="registry_review"),
    path("registry/review/cards/<int:user_id>", views.review_card, name="registry_review_card"),
    path("registry/review/reports/<int:report_id>", views.review_report, name="registry_review_report"),
    path("registry/me/data.json", views.export_my_data, name="registry_export"),
    path("registry/me/delete", views.delete_my_account, name="registry_delete"),
    path("artisans/", views.directory, name="registry_directory"),
    path("artisans/suggest", views.directory_suggest, name="registry_directory_suggest"),
    path("artisans/<str:username>/", views.storefront, name="registry_storefront"),
    path("artisans/<str:username>/contact", views.contact, name="registry_contact"),
    path("artisans/<str:username>/follow", views.artisan_follow, name="registry_follow"),
    path("products/<int:product_id>/favourite", views.product_favourite, name="registry_product_favourite"),
    path("favourites/", views.favourites, name="registry_favourites"),
    path("products/new", views.product_new, name="registry_product_new"),
    path("products/<int:product_id>/", views.product_page, name="registry_product"),
    path("products/<int:product_id>/edit", views.product_edit, name="registry_product_edit"),
    path("products/<int:product_id>/order", views.product_order, name="registry_product_order"),
    path("products/<int:product_id>/enquiry", views.product_enquiry, name="registry_product_enquiry"),
    path("enquiries/<str:link>/", views.enquiry_page, name="registry_enquiry"),
    path("products/<int:product_id>/tag", views.product_tag, name="registry_product_tag"),
    path("a/<str:code>", views.authenticity, name="registry_authenticity"),
    path("a/<str:code>/report", views.authenticity_report, name="registry_authenticity_report"),
    path("products/<int:product_id>/report", views.product_report, name="registry_product_report"),
    path("exchange/", views.exchange, name="registry_exchange"),
    path("exchange/<int:post_id>/close", views.exchange_close, name="registry_exchange_close"),
    path("exchange/<int:post_id>/reply", views.exchange_reply, name="registry_exchange_reply"),
    path("census/", views.census_public, name="registry_census"),
    path("census/dashboard", views.census_dashboard, name="registry_census_dashboard"),
    path("census/map.svg", views.census_map_svg, name="registry_census_map"),
    path("census/census.csv", views.census_csv, name="registry_census_csv"),
]
