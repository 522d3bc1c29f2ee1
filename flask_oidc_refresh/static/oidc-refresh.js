/*! Flask-OIDC-Refresh: keep fetch() working when the session needs renewing.
 *
 * A request made by a script cannot follow a redirect to the identity provider, so when the
 * session is due the server answers 403 with a `refresh_url` header. This wrapper handles it:
 * - "silent" (default): the session is renewed in a hidden frame and the request sent again
 *   once, so the page keeps its state; when the provider wants the user (or the frame fails),
 *   it falls back to "navigate";
 * - "navigate": the page goes to refresh_url and comes back once renewed;
 * - or your own onRefreshRequired(context) decides.
 * A 401 with a `login_url` header (signed out meanwhile, in another tab say) goes to sign-in,
 * and back to this page afterwards.
 * Works as a classic script (window.oidcRefresh) and as an ES module (oidc-refresh.mjs).
 */
(function (global) {
  "use strict";

  var nativeFetch = global.fetch.bind(global);
  var settings = { mode: "silent", timeout: 10000, onRefreshRequired: null };
  var renewal = null; // the renewal in a hidden frame in progress, shared by parallel requests
  var leaving = false; // a navigation to refresh_url has started

  function sameOrigin(url) {
    try {
      return new URL(url, location.href).origin === location.origin;
    } catch (error) {
      return false;
    }
  }

  // The URL a response of our own origin names in `header` when its status is `status`, if
  // it stays on our origin; null otherwise, so another site's answer can never send the page
  // (or a frame) anywhere.
  function ourUrl(response, status, header) {
    var url = response.status === status && response.headers.get(header);
    return url && sameOrigin(response.url) && sameOrigin(url) ? url : null;
  }

  function isRefreshRequired(response) {
    return ourUrl(response, 403, "refresh_url");
  }

  // A 401 naming the sign-in page (signed out meanwhile) goes there; any other answer is kept.
  function unlessSignedOut(response) {
    var loginUrl = ourUrl(response, 401, "login_url");
    return loginUrl ? navigate(loginUrl) : response;
  }

  function navigate(target) {
    if (!leaving) {
      leaving = true;
      var url = new URL(target, location.href);
      url.searchParams.set("next", location.pathname + location.search + location.hash);
      location.assign(url.href);
    }
    return new Promise(function () {}); // the page is going away
  }

  function renewInFrame(refreshUrl) {
    if (!renewal) {
      renewal = new Promise(function (resolve) {
        var url = new URL(refreshUrl, location.href);
        var done = url.pathname.replace(/\/?$/, "/done");
        var frame = document.createElement("iframe");
        var timer = setTimeout(finish, settings.timeout, false);
        function finish(renewed) {
          clearTimeout(timer);
          frame.remove();
          renewal = null;
          resolve(renewed);
        }
        frame.addEventListener("load", function () {
          var path = null;
          try {
            path = frame.contentWindow.location.pathname;
          } catch (error) {
            // another origin: the provider wants the user, which a hidden frame cannot show
          }
          finish(path === done);
        });
        url.searchParams.set("next", done);
        frame.style.display = "none";
        frame.src = url.href;
        document.body.appendChild(frame);
      });
    }
    return renewal;
  }

  function renewAndRetry(refreshUrl, retry) {
    return renewInFrame(refreshUrl).then(function (renewed) {
      if (!renewed) return navigate(refreshUrl);
      return nativeFetch(retry).then(function (response) {
        return isRefreshRequired(response) ? navigate(refreshUrl) : unlessSignedOut(response);
      });
    });
  }

  function oidcFetch(input, init) {
    var request = new Request(input, init);
    if (sameOrigin(request.url) && !request.headers.has("X-Requested-With")) {
      request.headers.set("X-Requested-With", "XMLHttpRequest");
    }
    var retry = request.clone();
    return nativeFetch(request).then(function (response) {
      var refreshUrl = isRefreshRequired(response);
      if (!refreshUrl) return unlessSignedOut(response);
      if (settings.onRefreshRequired) {
        return settings.onRefreshRequired({
          refreshUrl: refreshUrl,
          response: response,
          request: retry,
          navigate: function () { return navigate(refreshUrl); },
          renew: function () { return renewInFrame(refreshUrl); },
          retry: function () { return nativeFetch(retry.clone()).then(unlessSignedOut); },
        });
      }
      return settings.mode === "silent" ? renewAndRetry(refreshUrl, retry) : navigate(refreshUrl);
    });
  }

  var oidcRefresh = {
    fetch: oidcFetch,
    configure: function (options) {
      Object.assign(settings, options);
      return oidcRefresh;
    },
    install: function () {
      global.fetch = oidcFetch;
      return oidcRefresh;
    },
  };
  global.oidcRefresh = oidcRefresh;

  var script = global.document && document.currentScript;
  if (script) {
    if (script.dataset.mode) settings.mode = script.dataset.mode;
    if (script.dataset.install === "fetch") oidcRefresh.install();
  }
})(globalThis);
