from django.urls import path

from labeling import views

app_name = "labeling"
urlpatterns = [
    path("", views.home, name="home"),
    path("tasks/<int:task_id>/label/", views.label_task, name="label"),
]
