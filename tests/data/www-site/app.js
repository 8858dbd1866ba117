// Fixture script: served as application/javascript, gzip variant expected.
document.addEventListener("DOMContentLoaded", function () {
  var links = document.querySelectorAll("a");
  for (var i = 0; i < links.length; i++) {
    links[i].setAttribute("data-index", String(i));
  }
  console.log("oasis www fixture loaded with " + links.length + " links");
});
