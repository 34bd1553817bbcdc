from django.urls import path

from . import views

_KB = "t/<slug:tenant_slug>/knowledge/<int:knowledgebase_id>/"
_DOC = "t/<slug:tenant_slug>/knowledge/documents/<int:document_id>/"

urlpatterns = [
    path("t/<slug:tenant_slug>/knowledge/", views.kb_list, name="kb_list"),
    path(_KB, views.kb_detail, name="kb_detail"),
    path(_KB + "upload/", views.document_upload, name="kb_document_upload"),
    path(_KB + "url/", views.document_add_url, name="kb_document_add_url"),
    path(_KB + "text/", views.document_add_text, name="kb_document_add_text"),
    path(_KB + "status.json", views.kb_status, name="kb_status"),
    path(_KB + "documents/", views.kb_documents, name="kb_documents"),
    path(_KB + "search/", views.kb_search, name="kb_search"),
    path(_KB + "rename/", views.kb_rename, name="kb_rename"),
    path(_KB + "delete/", views.kb_delete, name="kb_delete"),
    path(_KB + "reindex/", views.kb_reindex, name="kb_reindex"),
    path(_KB + "reindex/cancel/", views.kb_reindex_cancel, name="kb_reindex_cancel"),
    path(_DOC + "retry/", views.document_retry, name="kb_document_retry"),
    path(_DOC + "resync/", views.document_resync, name="kb_document_resync"),
    path(_DOC + "delete/", views.document_delete, name="kb_document_delete"),
]
