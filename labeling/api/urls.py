from django.urls import path

from labeling.api import views

app_name = "api"
urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("tasks/", views.TaskListView.as_view(), name="tasks"),
    path("tasks/<int:task_id>/next/", views.NextView.as_view(), name="next"),
    path("tasks/<int:task_id>/export/", views.ExportView.as_view(), name="export"),
    path("labels/", views.LabelCreateView.as_view(), name="labels"),
]
