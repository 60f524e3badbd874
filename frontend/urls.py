from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/", views.home, name="rooms"),
    path("login/", views.home, name="login"),
]
