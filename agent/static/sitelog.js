/* sitelog.js: browser events for sitelog. No dependencies, no build step.
 *
 * Settings come from this script tag's data attributes, written by `{% sitelog_script %}` or
 * `EventsApp.script_tag(environ)`: data-endpoint, data-token (signed page token), data-csrf
 * (Django's CSRF token), data-heartbeat (seconds between video progress events).
 *
 *   sitelog.track(name, params)                      any event
 *   sitelog.trackVideo(video, {course, tutorial, language, resume})
 *   sitelog.mark(course, tutorial, language, completed)   the learner's own mark
 *   sitelog.flush()                                  send what is queued now
 *
 * <video data-sitelog-course=".." data-sitelog-tutorial=".." data-sitelog-language=".."
 * data-sitelog-resume="42.5"> is tracked without any code. Events are batched and sent with
 * fetch (keepalive); when the page is hidden or closed, with navigator.sendBeacon. Unsent events
 * wait in localStorage (per page load) and are sent by a later page after going offline.
 */
(function (window, document) {
  "use strict";
  if (window.sitelog && window.sitelog.version) {
    return;  // loaded twice
  }
  var tag = document.currentScript;
  var data = (tag && tag.dataset) || {};
  var endpoint = data.endpoint || "/sitelog/events";
  var token = data.token || null;
  var csrf = data.csrf || null;
  var heartbeat = Math.max(1, parseFloat(data.heartbeat) || 15) * 1000;
  var MAX_BATCH = 50;        // events per request (the endpoint's default limit is 100)
  var MAX_QUEUE = 500;       // oldest events are dropped beyond this many unsent
  var SEND_DELAY = 1000;     // ms to gather events into one request
  var PREFIX = "sitelog:q:";
  var ADOPT_AFTER = 30000;   // ms after which another page's unsent events are taken over
  var MAX_BACKOFF = 60000;

  var storage = null;
  try {
    storage = window.localStorage;
    storage.setItem(PREFIX + "probe", "1");
    storage.removeItem(PREFIX + "probe");
  } catch (e) {
    storage = null;  // private mode, disabled storage: events still go, just not retried later
  }

  function hex(bytes) {
    var values = new Uint8Array(bytes), out = "";
    window.crypto.getRandomValues(values);
    for (var i = 0; i < values.length; i++) {
      out += (values[i] < 16 ? "0" : "") + values[i].toString(16);
    }
    return out;
  }

  function uuid() {
    if (window.crypto.randomUUID) {
      return window.crypto.randomUUID();
    }
    var h = hex(16);
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-4" + h.slice(13, 16) + "-" +
      "89ab"[parseInt(h[16], 16) & 3] + h.slice(17, 20) + "-" + h.slice(20, 32);
  }

  var page = hex(12);  // this page load: visits are counted per page load
  var counter = 0;
  var queue = [];      // events not yet sent, oldest first
  var inflight = null; // events of the request being sent
  var timer = null;
  var backoff = 0;

  // Unsent events, kept per page load. When the page closes, a request in flight is left out:
  // it is a keepalive fetch, which the browser completes after the page is gone.
  function persist(closed) {
    if (!storage) {
      return;
    }
    var key = PREFIX + page, events = closed ? queue : (inflight || []).concat(queue);
    try {
      if (events.length) {
        storage.setItem(key, JSON.stringify({t: Date.now(), closed: !!closed, events: events}));
      } else {
        storage.removeItem(key);
      }
    } catch (e) {
      // storage full: the events stay in memory only
    }
  }

  function adopt() {
    if (!storage) {
      return;
    }
    var now = Date.now(), adopted = [];
    for (var i = storage.length - 1; i >= 0; i--) {
      var key = storage.key(i);
      if (!key || key.indexOf(PREFIX) !== 0 || key === PREFIX + page || key === PREFIX + "probe") {
        continue;
      }
      try {
        var saved = JSON.parse(storage.getItem(key));
        if (!saved.closed && now - saved.t < ADOPT_AFTER) {
          continue;  // another open tab's queue
        }
        adopted = adopted.concat(saved.events || []);
      } catch (e) {
        // unreadable: dropped below
      }
      storage.removeItem(key);
    }
    if (adopted.length) {
      queue = adopted.concat(queue).slice(-MAX_QUEUE);
      persist(false);
      schedule(0);
    }
  }

  function schedule(ms) {
    if (timer === null) {
      timer = window.setTimeout(function () {
        timer = null;
        send();
      }, ms);
    }
  }

  function envelope(events) {
    var body = {events: events};
    if (token) {
      body.token = token;
    }
    if (csrf) {
      body.csrf = csrf;
    }
    return JSON.stringify(body);
  }

  function track(name, params) {
    queue.push({id: uuid(), name: String(name), params: params || {}, url: window.location.href,
                ts: Date.now(), page: page, n: ++counter});
    if (queue.length > MAX_QUEUE) {
      queue.splice(0, queue.length - MAX_QUEUE);
    }
    persist(false);
    schedule(SEND_DELAY);
  }

  function retry(wait) {
    queue = inflight.concat(queue);
    inflight = null;
    persist(false);
    backoff = Math.min(MAX_BACKOFF, Math.max(wait || 0, backoff ? backoff * 2 : 2000));
    schedule(backoff);
  }

  function send() {
    if (inflight || !queue.length) {
      return;
    }
    if (navigator.onLine === false || !window.fetch) {
      return;  // the "online" event sends them; without fetch, the beacon on hide does
    }
    inflight = queue.splice(0, MAX_BATCH);
    var headers = {"Content-Type": "text/plain;charset=UTF-8"};
    if (csrf) {
      headers["X-CSRFToken"] = csrf;
    }
    window.fetch(endpoint, {method: "POST", body: envelope(inflight), headers: headers,
                            credentials: "same-origin", keepalive: true})
      .then(function (response) {
        if (response.status === 429 || response.status >= 500) {
          retry(1000 * (parseInt(response.headers.get("Retry-After"), 10) || 0));
          return;
        }
        if (!response.ok && window.console) {  // refused for good: retrying cannot help
          response.text().then(function (text) { window.console.warn("sitelog:", text); });
        }
        inflight = null;
        backoff = 0;
        persist(false);
        if (response.ok) {
          response.json().then(function (body) {
            if (body && body.token) {
              token = body.token;  // renewed before the old one expires
            }
          }, function () {});
        }
        if (queue.length) {
          schedule(0);
        }
      }, function () {
        retry(0);  // offline or the server is unreachable
      });
  }

  function beacon() {
    if (timer !== null) {
      window.clearTimeout(timer);
      timer = null;
    }
    if (queue.length && navigator.onLine !== false && navigator.sendBeacon) {
      while (queue.length) {
        var batch = queue.slice(0, MAX_BATCH);
        var blob = new Blob([envelope(batch)], {type: "text/plain;charset=UTF-8"});
        if (!navigator.sendBeacon(endpoint, blob)) {
          break;
        }
        queue.splice(0, batch.length);
      }
    }
    persist(true);  // whatever is left is sent by the next page
  }

  // Page timing: time visible and time open, sent whenever the page is hidden or closed.
  var opened = Date.now();
  var visibleSince = document.visibilityState === "visible" ? opened : null;
  var visibleMs = 0;

  function pageTime() {
    var now = Date.now();
    if (visibleSince !== null) {
      visibleMs += now - visibleSince;
    }
    visibleSince = null;
    track("page.time", {visible_ms: visibleMs, total_ms: now - opened});
  }

  // Video tracking.
  var videos = [];
  var beatTimer = null;

  function round(seconds) {
    return Math.round(seconds * 100) / 100;
  }

  function played(video) {
    var out = [], ranges = video.played;
    for (var i = 0; i < ranges.length && out.length < 100; i++) {
      out.push([round(ranges.start(i)), round(ranges.end(i))]);
    }
    return out;
  }

  function beat() {
    for (var i = 0; i < videos.length; i++) {
      if (!videos[i].video.paused && !videos[i].video.ended) {
        videos[i].emit("video.progress");
      }
    }
  }

  function trackVideo(video, options) {
    options = options || {};
    var set = video && video.dataset ? video.dataset : {};
    var ids = {course: options.course || set.sitelogCourse,
               tutorial: options.tutorial || set.sitelogTutorial,
               language: options.language || set.sitelogLanguage};
    if (!video || video.sitelogTracked || !ids.course || !ids.tutorial || !ids.language) {
      return;
    }
    video.sitelogTracked = true;
    var last = video.currentTime || 0, before = 0;

    function emit(name, extra) {
      var params = {course: String(ids.course), tutorial: String(ids.tutorial),
                    language: String(ids.language), position: round(video.currentTime || 0),
                    played: played(video)};
      if (isFinite(video.duration) && video.duration > 0) {
        params.duration = round(video.duration);
      }
      for (var key in extra || {}) {
        params[key] = extra[key];
      }
      track(name, params);
    }

    videos.push({video: video, emit: emit});
    if (beatTimer === null) {
      beatTimer = window.setInterval(beat, heartbeat);
    }
    video.addEventListener("play", function () { emit("video.play"); });
    video.addEventListener("pause", function () {
      if (!video.ended) {
        emit("video.pause");
      }
    });
    video.addEventListener("ended", function () { emit("video.ended"); });
    video.addEventListener("timeupdate", function () {
      if (!video.seeking) {
        last = video.currentTime;
      }
    });
    video.addEventListener("seeking", function () { before = last; });
    video.addEventListener("seeked", function () {
      last = video.currentTime;
      emit("video.seek", {previous: round(before)});
    });

    var resume = parseFloat(options.resume !== undefined ? options.resume : set.sitelogResume);
    if (resume > 0) {
      var seek = function () {
        if (resume < video.duration - 1) {
          video.currentTime = resume;
        }
      };
      if (video.readyState >= 1) {
        seek();
      } else {
        video.addEventListener("loadedmetadata", seek, {once: true});
      }
    }
  }

  function mark(course, tutorial, language, completed) {
    track("progress.mark", {course: String(course), tutorial: String(tutorial),
                            language: String(language), completed: !!completed});
    send();
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      beat();
      pageTime();
      beacon();
    } else {
      visibleSince = Date.now();
    }
  });
  window.addEventListener("pagehide", function () {
    if (visibleSince !== null) {  // closed without being hidden first
      beat();
      pageTime();
    }
    beacon();
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      persist(false);  // back from the back/forward cache: this page is open again
    }
  });
  window.addEventListener("online", function () {
    backoff = 0;
    schedule(0);
  });

  function start() {
    var found = document.querySelectorAll("video[data-sitelog-course]");
    for (var i = 0; i < found.length; i++) {
      trackVideo(found[i]);
    }
    adopt();
  }

  window.sitelog = {version: "1", page: page, track: track, trackVideo: trackVideo, mark: mark,
                    flush: send};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})(window, document);
