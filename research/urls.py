from django.urls import path

from research import views

app_name = "dashboard"
urlpatterns = [
    path("", views.index, name="index"),
    path("tasks/<int:task_id>/", views.task_dashboard, name="task"),
    path("tasks/<int:task_id>/samples/", views.sample_browser, name="samples"),
    path("tasks/<int:task_id>/export/<str:fmt>.jsonl", views.export, name="export"),
]
