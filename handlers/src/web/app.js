// Progressive enhancement only: every page works without this file.
// Changing a filter of an evaluation page applies it at once (the Apply button still works).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form.filter select").forEach(function (select) {
    select.addEventListener("change", function () {
      var page = select.form.querySelector("input[name=page]");
      if (page) { page.remove(); }
      select.form.submit();
    });
  });
});
