/* datamin.js — served by the datamin collector at <prefix>/datamin.js (default /collect/datamin.js).
 *
 *   <script src="/collect/datamin.js" defer></script>          posts a page_view on load
 *   datamin.track("search", {search_terms: "pricing"})        usage events, sent in batches
 *   datamin.consent({statistics: true, marketing: false})     the banner choice, sent at once
 *
 * Events go to the collector the script came from (or data-endpoint="https://…/collect"), as
 * {"events": [...]} with credentials, so the consent cookie the web server set travels with them.
 * data-page-view="off" turns the automatic page_view off. Every call returns a Promise of the
 * collector's answer ({accepted, rejected}); failures never throw into the page.
 */
(function (w, d) {
  "use strict";
  var me = d.currentScript;
  var endpoint = (me && me.getAttribute("data-endpoint")) ||
    (me && me.src ? me.src.replace(/\/datamin\.js(\?.*)?$/, "/") : "/collect/");
  var queue = [];
  var timer = null;

  function post(events, keepalive) {
    return w.fetch(endpoint, {
      method: "POST", credentials: "include", keepalive: !!keepalive,
      headers: {"content-type": "application/json"},
      body: JSON.stringify({events: events})
    }).then(function (r) { return r.json(); })
      .catch(function (e) { return {accepted: 0, rejected: [], error: String(e)}; });
  }

  function flush(keepalive) {
    if (timer) { w.clearTimeout(timer); timer = null; }
    if (!queue.length) { return Promise.resolve({accepted: 0, rejected: []}); }
    var batch = queue.splice(0, 100);
    return post(batch, keepalive);
  }

  function track(kind, fields) {
    var event = {event: "usage_event", kind: kind, time: new Date().toISOString(), page: w.location.href};
    for (var k in fields || {}) { if (Object.prototype.hasOwnProperty.call(fields, k)) { event[k] = fields[k]; } }
    queue.push(event);
    if (!timer) { timer = w.setTimeout(function () { flush(false); }, 1000); }
    return event;
  }

  function consent(choice, policyVersion) {
    choice = choice || {};
    return post([{event: "consent_record", time: new Date().toISOString(), necessary: true,
                  statistics: !!choice.statistics, marketing: !!choice.marketing, feedback: !!choice.feedback,
                  policy_version: policyVersion || null, source: choice.source || "banner"}], false);
  }

  w.addEventListener("pagehide", function () { flush(true); });
  w.datamin = {track: track, flush: flush, consent: consent, endpoint: endpoint};
  if (!me || me.getAttribute("data-page-view") !== "off") { track("page_view", {}); }
})(window, document);
