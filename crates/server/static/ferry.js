// Ferry's web app: the few things only a script can do. Every page works without it (plain forms and
// links); with it, uploads go in resumable chunks (tus 1.0) with progress, files can be dropped on the
// listing, and a running task's progress updates itself. State changes are announced in the live region.
'use strict';

(function () {
  const CHUNK = 16 * 1024 * 1024;
  const MAX_TRIES = 12;

  function announce(text) {
    const region = document.getElementById('announce');
    if (region) region.textContent = text;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // tus metadata values are base64 of UTF-8
  function b64(text) {
    const bytes = new TextEncoder().encode(text);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function humanSize(n) {
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let unit = 0;
    while (n >= 1000 && unit < units.length - 1) {
      n /= 1000;
      unit += 1;
    }
    return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${units[unit]}`;
  }

  // One request; resolves with the XHR whatever its status, rejects on a network fault.
  function request(method, url, headers, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new Error('the connection failed'));
      xhr.onabort = () => reject(new Error('the upload was stopped'));
      xhr.send(body);
    });
  }

  function serverMessage(xhr) {
    try {
      return JSON.parse(xhr.responseText).message || `HTTP ${xhr.status}`;
    } catch (_) {
      return `HTTP ${xhr.status}`;
    }
  }

  class Upload {
    constructor(form, file) {
      this.collection = form.dataset.collection;
      this.path = form.dataset.folder + file.name;
      this.csrf = form.dataset.csrf;
      this.file = file;
      this.key = `ferry-upload:${this.collection}:${this.path}:${file.size}:${file.lastModified}`;
      this.item = document.createElement('div');
      this.item.className = 'upload-item';
      this.label = document.createElement('span');
      this.bar = document.createElement('progress');
      this.bar.max = Math.max(file.size, 1);
      this.bar.value = 0;
      this.bar.setAttribute('aria-label', `Upload of ${file.name}`);
      this.item.append(this.label, document.createElement('br'), this.bar);
      form.querySelector('.uploads').append(this.item);
      this.lastAnnounced = -1;
      this.show(0, 'waiting');
    }

    // What happened, in order, for whoever watches the page (tests, a curious person in the console).
    // Kept for the tab's life (sessionStorage), so it outlasts the page's reload at the end.
    record(event, offset) {
      const log = JSON.parse(sessionStorage.getItem('ferry-upload-log') || '[]');
      log.push({ file: this.file.name, event, offset });
      sessionStorage.setItem('ferry-upload-log', JSON.stringify(log.slice(-200)));
    }

    headers(extra) {
      return { 'Tus-Resumable': '1.0.0', 'X-CSRF-Token': this.csrf, ...extra };
    }

    show(offset, state) {
      this.bar.value = offset;
      const pct = this.file.size ? Math.floor((offset * 100) / this.file.size) : 100;
      this.label.textContent = `${this.file.name}: ${humanSize(offset)} of ${humanSize(this.file.size)} (${pct}%) ${state}`;
      // announce every quarter, not every chunk: a screen reader user hears progress without a flood
      const quarter = Math.floor(pct / 25);
      if (quarter !== this.lastAnnounced) {
        this.lastAnnounced = quarter;
        announce(`${this.file.name}: ${pct}% uploaded`);
      }
    }

    // Where the upload is on the server: an earlier attempt's (after a reload) or a new one.
    async locate() {
      const known = localStorage.getItem(this.key);
      if (known) {
        const head = await request('HEAD', known, this.headers({}), null);
        if (head.status === 200) {
          const offset = Number(head.getResponseHeader('Upload-Offset'));
          this.record('resumed', offset);
          return { url: known, offset };
        }
        localStorage.removeItem(this.key);
      }
      const created = await request('POST', `/uploads/${this.collection}`, this.headers({
        'Upload-Length': String(this.file.size),
        'Upload-Metadata': `path ${b64(this.path)}`,
      }), null);
      if (created.status !== 201) {
        // refused (no permission, a bad name): retrying would not help
        const final = created.status < 500 && created.status !== 409;
        throw Object.assign(new Error(serverMessage(created)), { final });
      }
      const url = new URL(created.getResponseHeader('Location'), location.href).pathname;
      localStorage.setItem(this.key, url);
      this.record('created', 0);
      return { url, offset: 0 };
    }

    async run() {
      let tries = 0;
      let place = null;
      for (;;) {
        try {
          if (!place) place = await this.locate();
          if (place.offset >= this.file.size && this.file.size > 0) break;
          const end = Math.min(place.offset + CHUNK, this.file.size);
          const start = place.offset;
          this.record('patch', start);
          this.show(start, 'uploading');
          const sent = await request('PATCH', place.url, this.headers({
            'Content-Type': 'application/offset+octet-stream',
            'Upload-Offset': String(start),
          }), this.file.slice(start, end), (loaded) => this.show(start + loaded, 'uploading'));
          if (sent.status === 204) {
            place.offset = Number(sent.getResponseHeader('Upload-Offset'));
            tries = 0;
            if (place.offset >= this.file.size) break;
            continue;
          }
          if (sent.status === 409 || sent.status >= 500) {
            place = null; // ask the server where it is, then go on from there
            throw new Error(serverMessage(sent));
          }
          throw Object.assign(new Error(serverMessage(sent)), { final: true });
        } catch (err) {
          if (err.final || tries >= MAX_TRIES) {
            this.show(this.bar.value, `failed: ${err.message}`);
            announce(`Upload of ${this.file.name} failed: ${err.message}`);
            this.item.classList.add('failed');
            return false;
          }
          tries += 1;
          this.record('retry', this.bar.value);
          place = null;
          const wait = Math.min(30000, 1000 * 2 ** (tries - 1));
          this.show(this.bar.value, `connection lost (${err.message}); retrying in ${wait / 1000} s`);
          await sleep(wait);
        }
      }
      localStorage.removeItem(this.key);
      this.record('done', this.file.size);
      this.show(this.file.size, 'done');
      return true;
    }
  }

  async function uploadAll(form, files) {
    const names = [];
    let ok = true;
    for (const file of files) {
      const up = new Upload(form, file);
      if (await up.run()) names.push(file.name);
      else ok = false;
    }
    if (ok && names.length) {
      const url = new URL(location.href);
      url.searchParams.set('done', 'upload');
      url.searchParams.set('name', names.join(', '));
      location.assign(url.toString());
    }
  }

  // Each pane has its upload form and its listing to drop files on.
  function enhanceUploads() {
    for (const form of document.querySelectorAll('form.upload')) {
      const input = form.querySelector('input[type=file]');
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        if (input.files.length) uploadAll(form, Array.from(input.files));
      });
      const pane = form.closest('section') || document;
      const table = pane.querySelector('[data-drop]');
      if (!table) continue;
      table.addEventListener('dragover', (e) => {
        e.preventDefault();
        table.classList.add('dragover');
      });
      table.addEventListener('dragleave', () => table.classList.remove('dragover'));
      table.addEventListener('drop', (e) => {
        e.preventDefault();
        table.classList.remove('dragover');
        const files = Array.from(e.dataTransfer.files);
        if (files.length) uploadAll(form, files);
      });
    }
  }

  async function followTask() {
    const section = document.querySelector('section.progress[data-running=true]');
    if (!section) return;
    const id = section.dataset.task;
    let last = document.getElementById('status').textContent;
    for (let i = 0; i < 100000; i += 1) {
      await sleep(2000);
      let p;
      try {
        const r = await fetch(`/activity/${id}/progress`, { credentials: 'same-origin' });
        if (!r.ok) return;
        p = await r.json();
      } catch (_) {
        continue;
      }
      const done = p.files_transferred + p.files_skipped;
      const bar = document.getElementById('bar');
      bar.max = Math.max(p.files, 1);
      bar.value = done;
      document.getElementById('files').textContent = `${done} of ${p.files}`;
      document.getElementById('bytes').textContent = p.bytes;
      document.getElementById('rate').textContent = p.rate;
      if (p.status_text !== last) {
        last = p.status_text;
        document.getElementById('status').textContent = last;
        announce(`Task: ${last}`);
      }
      if (p.status !== 'ACTIVE' && p.status !== 'INACTIVE') return;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    enhanceUploads();
    followTask();
  });
})();
