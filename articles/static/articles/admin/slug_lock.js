// A published article's slug is its public address: the input stays read-only until the editor
// ticks the checkbox named in data-slug-lock. The server checks the same rule (ArticleAdminForm).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-slug-lock]").forEach(function (slug) {
        const checkbox = document.querySelector('input[name="' + slug.dataset.slugLock + '"]');
        if (!checkbox) {
            return;
        }
        const sync = function () {
            slug.readOnly = !checkbox.checked;
        };
        checkbox.addEventListener("change", sync);
        sync();
    });
});
