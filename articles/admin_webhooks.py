"""Webhooks in the admin: endpoints staff register, and the log of every delivery."""

import secrets

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import tasks
from .models import WebhookDelivery, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https", widget=forms.URLInput(attrs={"size": 60}))
    events = forms.MultipleChoiceField(
        label=_("events"),
        choices=WebhookEndpoint.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("“Corrected” is sent once corrections exist; until then it never fires."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "secret", "events", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.initial.setdefault("secret", secrets.token_urlsafe(32))
            self.initial.setdefault("events", [choice for choice, _label in WebhookEndpoint.Event.choices])

    def clean_url(self):
        url = self.cleaned_data["url"]
        if not url.lower().startswith(("https://", "http://")):
            raise forms.ValidationError(_("Use an http:// or https:// address."), code="scheme")
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "url", "event_list", "active", "created_at"]
    list_filter = ["active"]

    @admin.display(description=_("events"))
    def event_list(self, endpoint):
        labels = dict(WebhookEndpoint.Event.choices)
        return ", ".join(str(labels.get(event, event)) for event in endpoint.events)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read-only, with a way to send failed deliveries again."""

    list_display = ["created_at", "event", "endpoint", "article", "state", "response_code", "attempts", "delivered_at", "last_error"]
    list_filter = ["state", "event", "endpoint"]
    list_select_related = ["endpoint", "article"]
    show_full_result_count = False
    actions = ["send_again"]
    readonly_fields = [
        "endpoint", "event", "article", "state", "attempts", "response_code", "last_error", "created_at",
        "next_attempt_at", "delivered_at", "payload",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("article__body", "article__summary", "article__imported_fields")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_send_again_permission(self, request):
        return request.user.has_perm("articles.change_webhookendpoint")

    @admin.action(description=_("Send the selected deliveries again"), permissions=["send_again"])
    def send_again(self, request, queryset):
        with transaction.atomic():
            ids = list(queryset.exclude(state=WebhookDelivery.State.DELIVERED).values_list("pk", flat=True))
            WebhookDelivery.objects.filter(pk__in=ids).update(
                state=WebhookDelivery.State.PENDING, attempts=0, next_attempt_at=None
            )
            for delivery_id in ids:
                transaction.on_commit(lambda delivery_id=delivery_id: tasks.deliver_webhook.enqueue(delivery_id))
        self.message_user(
            request,
            ngettext("%(count)d delivery queued again.", "%(count)d deliveries queued again.", len(ids))
            % {"count": len(ids)},
            messages.SUCCESS,
        )
