"""Keep the content version in step with every saved or deleted Article or Source.

Bulk writes that bypass signals (``QuerySet.update``, ``bulk_create``) call
``ContentVersion.bump()`` themselves, in the service module that performs them.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Article, ContentVersion, Source


@receiver(post_save, sender=Article, dispatch_uid="article_saved_bump")
@receiver(post_delete, sender=Article, dispatch_uid="article_deleted_bump")
@receiver(post_save, sender=Source, dispatch_uid="source_saved_bump")
@receiver(post_delete, sender=Source, dispatch_uid="source_deleted_bump")
def bump_content_version(**kwargs):
    if kwargs.get("raw"):  # loaddata fixtures
        return
    ContentVersion.bump()
