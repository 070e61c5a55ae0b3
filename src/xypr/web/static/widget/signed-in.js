// Genesys Cloud redirects here after sign-in with the token in the URL fragment: hand it to the widget
// (our parent frame, or the window that opened this popup), on our own origin only, and go away.
"use strict";
(function () {
  const fragment = window.location.hash.slice(1);
  const target = window.opener || window.parent;
  history.replaceState(null, "", window.location.pathname); // the token does not stay in the address
  if (target && target !== window) {
    target.postMessage({ type: "xypr-genesys-token", fragment: fragment }, window.location.origin);
  }
  if (window.opener) window.close();
})();
