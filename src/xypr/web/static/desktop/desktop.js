// The emulated Genesys agent desktop (sandbox only): the transcript, the composer, and the host side of the
// Client App SDK's postMessage protocol (`protocol: purecloud-client-apps`): the app posts `{action, ...}`
// to its parent; the parent posts `{purecloudEventType, hook}` back.
"use strict";
const cfg = JSON.parse(document.getElementById("desktop-config").textContent);
window.sdkMessages = [];
const frame = document.getElementById('widget-frame');
const transcript = document.getElementById('transcript');
const composer = document.getElementById('desktop-composer');
function show(entry) {
  const li = document.createElement('li');
  li.className = entry.direction;
  const parts = [entry.text || ''];
  (entry.content || []).forEach(function (c) {
    if (c.contentType === 'Attachment' && c.attachment) parts.push('[' + (c.attachment.mediaType || 'file') + '] ' + (c.attachment.filename || ''));
    if (c.contentType === 'QuickReply' && c.quickReply) parts.push('( ' + c.quickReply.text + ' )');
  });
  li.textContent = parts.filter(Boolean).join('\n');
  const small = document.createElement('small');
  small.textContent = entry.time + (entry.originatingEntity === 'Bot' ? ' · API' : '');
  li.appendChild(small);
  return li;
}
let shown = 0;
async function refresh() {
  const answer = await fetch(cfg.base + '/_sandbox/conversations/' + encodeURIComponent(cfg.conversationId) + '/transcript');
  if (!answer.ok) return;
  const body = await answer.json();
  if (body.messages.length !== shown) {
    transcript.replaceChildren.apply(transcript, body.messages.map(show));
    shown = body.messages.length;
    transcript.scrollTop = transcript.scrollHeight;
  }
}
refresh(); setInterval(refresh, 1000);
document.getElementById('reply-form').addEventListener('submit', async function (event) {
  event.preventDefault();
  const text = composer.value.trim();
  if (!text) return;
  await fetch(cfg.base + '/_sandbox/integrations/' + encodeURIComponent(cfg.integrationId) + '/agent/messages', {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({to: cfg.customer, text: text})});
  composer.value = '';
  refresh();
});
function toast(title, message) {
  const box = document.createElement('div');
  const strong = document.createElement('strong'); strong.textContent = title;
  box.appendChild(strong); box.appendChild(document.createTextNode(' ' + (message || '')));
  document.getElementById('toasts').appendChild(box);
  setTimeout(function () { box.remove(); }, 7000);
}
window.addEventListener('message', function (event) {
  if (!frame || event.source !== frame.contentWindow || event.origin !== cfg.widgetOrigin) return;
  const data = event.data;
  if (!data || data.protocol !== 'purecloud-client-apps') return;
  window.sdkMessages.push(data);
  if (data.action === 'showToast') toast(data.title, data.message);
  else if (data.action === 'setAttentionCount') {
    const badge = document.getElementById('attention');
    badge.textContent = String(data.count); badge.hidden = !data.count;
  } else if (data.action === 'proposeInteractionMessage') {
    composer.value = data.message; composer.focus();
  }
});
function lifecycle(hook) {
  if (frame) frame.contentWindow.postMessage({purecloudEventType: 'appLifecycleHook', hook: hook}, cfg.widgetOrigin);
}
if (frame) frame.addEventListener('load', function () { lifecycle('bootstrap'); });
document.getElementById('stop-widget').addEventListener('click', function () { lifecycle('stop'); });
