from __future__ import annotations

from django import forms

from .models import KnowledgeBase
from .uploads import ALLOWED_EXTENSIONS, ALLOWED_TYPES_LABEL


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    embedding_model = forms.ChoiceField(
        choices=KnowledgeBase.EmbeddingModel.choices,
        initial=KnowledgeBase.EmbeddingModel.MINILM,
        help_text="Fixed once the knowledge base exists; changing it means re-indexing every document.",
    )
    chunk_size_tokens = forms.IntegerField(min_value=32, max_value=8000, initial=200)
    chunk_overlap_tokens = forms.IntegerField(min_value=0, max_value=4000, initial=30)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class UploadForm(forms.Form):
    """For rendering the file input only: the upload view reads request.FILES.getlist("file") and
    checks each file on its own, so one bad file does not refuse the others."""

    file = forms.FileField(
        label="Files",
        help_text=f"{ALLOWED_TYPES_LABEL}. Choose or drop several at once.",
        widget=MultipleFileInput(attrs={"multiple": True, "accept": ",".join(ALLOWED_EXTENSIONS)}),
    )


class UrlForm(forms.Form):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    is_sitemap = forms.BooleanField(required=False, label="This is a sitemap (fetch the pages it lists)")


class TextForm(forms.Form):
    title = forms.CharField(max_length=300)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}))


class SearchForm(forms.Form):
    q = forms.CharField(max_length=500, label="Query")
    k = forms.IntegerField(min_value=1, max_value=50, initial=5, required=False)


class KnowledgeBaseRenameForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class KnowledgeBaseDeleteForm(forms.Form):
    confirm_name = forms.CharField(max_length=120, label="Type the knowledge base's name to confirm")


class ReindexForm(forms.Form):
    embedding_model = forms.ChoiceField(choices=KnowledgeBase.EmbeddingModel.choices, label="New embedding model")
