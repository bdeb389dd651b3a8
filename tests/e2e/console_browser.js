// Drives the admin console in headless Chromium (puppeteer-core): signs in,
// sees the connections and their states, runs Test, starts a device-code
// authorization, approves it at the test identity provider, and waits for the
// connection to turn Active. Screenshots go to SHOTS. Also checks, from inside
// the page, that a POST without the CSRF token is refused (403).
// Environment: CONSOLE_URL, CONSOLE_PASSWORD, IDP_CONTROL, SHOTS, PUPPETEER_DIR, CHROMIUM.
// Prints "PASS: ..." / "FAIL: ..." lines; exit status 1 when any check failed.
'use strict';
const path = require('path');
const puppeteer = require(path.resolve(process.env.PUPPETEER_DIR, 'node_modules', 'puppeteer-core'));

const url = process.env.CONSOLE_URL;
const shots = process.env.SHOTS;
let failures = 0;
function check(what, ok, detail) {
  console.log((ok ? 'PASS: ' : 'FAIL: ') + what + (detail ? ' (' + detail + ')' : ''));
  if (!ok) failures++;
}

async function stateOf(page, name) {
  return page.$eval('#state-' + name, e => e.dataset.state).catch(() => '');
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({width: 1360, height: 900});
    page.setDefaultTimeout(20000);

    // Sign-in page, a wrong password, then the right one.
    await page.goto(url + '/', {waitUntil: 'load'});
    check('the console asks for the password first', (await page.$('input[name=password]')) !== null);
    await page.screenshot({path: shots + '/1-login.png'});
    await page.type('#password', 'not the password');
    await Promise.all([page.waitForNavigation(), page.click('#signin')]);
    check('a wrong password is refused', (await page.$('#login-error')) !== null);
    await page.type('#password', process.env.CONSOLE_PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('#signin')]);
    await page.waitForSelector('#state-ms-secret');
    const cookies = await page.cookies();
    const c = cookies.find(k => k.name === 'xo_console');
    check('session cookie is HttpOnly and SameSite=Strict', c && c.httpOnly && c.sameSite === 'Strict',
          c ? 'httpOnly=' + c.httpOnly + ' sameSite=' + c.sameSite : 'no cookie');
    check('the CSRF token is in <meta name="csrf">',
          (await page.$eval('meta[name=csrf]', m => m.content.length)) >= 32);

    // Connections and states.
    const names = await page.$$eval('#connections tr', rows => rows.map(r => r.id.replace('conn-', '')));
    for (const n of ['ms-secret', 'ms-cert', 'google', 'generic', 'ms-device'])
      check('connection ' + n + ' is listed', names.includes(n), names.join(','));
    check('ms-device: Needs authorization before anyone signed in',
          (await stateOf(page, 'ms-device')) === 'Needs authorization', await stateOf(page, 'ms-device'));
    await page.screenshot({path: shots + '/2-connections.png', fullPage: true});

    // Test: the steps of `xoauth2-proxy test`, then the connection shows Active.
    await page.click('#test-ms-secret');
    await page.waitForSelector('#test-output-ms-secret');
    const out = await page.$eval('#test-output-ms-secret', e => ({ok: e.dataset.ok, text: e.textContent}));
    check('Test on ms-secret passes with every step shown', out.ok === 'true' && /smtp RSET/.test(out.text) &&
          /verdict: OK/.test(out.text), out.text.split('\n').pop());
    await page.waitForFunction(() => document.querySelector('#state-ms-secret').dataset.state === 'Active');
    check('ms-secret turns Active after the test', (await stateOf(page, 'ms-secret')) === 'Active');
    await page.screenshot({path: shots + '/3-test.png', fullPage: true});

    // Requests without the CSRF token are refused, also from the signed-in page.
    const noCsrf = await page.evaluate(async () =>
      (await fetch('/api/connections/ms-secret/test', {method: 'POST', body: '{}'})).status);
    check('POST without X-CSRF-Token: 403', noCsrf === 403, String(noCsrf));

    // Device code: Authorize shows the code and link; approve at the IdP; Active by itself.
    await page.click('#authorize-ms-device');
    await page.waitForSelector('#code-ms-device');
    const code = await page.$eval('#code-ms-device', e => e.textContent.trim());
    const link = await page.$eval('#verify-ms-device', e => e.href);
    check('device code and verification link shown', /^[A-Z0-9]{6,}$/.test(code) && /^https:\/\//.test(link), code + ' ' + link);
    await page.screenshot({path: shots + '/4-device-code.png', fullPage: true});
    const r = await fetch(process.env.IDP_CONTROL + '/_control', {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({device: {user_code: code, action: 'approve', mailbox: 'bob@contoso.test'}})});
    check('approved at the test identity provider', r.ok, String(r.status));
    await page.waitForFunction(() => document.querySelector('#state-ms-device').dataset.state === 'Active',
                               {timeout: 30000}).catch(() => {});
    check('ms-device turns Active by itself after the approval', (await stateOf(page, 'ms-device')) === 'Active',
          await stateOf(page, 'ms-device'));
    await page.screenshot({path: shots + '/5-active.png', fullPage: true});

    const html = await page.content();
    check('the page shows no token', !/eyJ(hbGci|0eXAi|raWQi)|eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(html));
  } finally {
    await browser.close();
  }
  process.exit(failures ? 1 : 0);
})().catch(e => { console.log('FAIL: browser run: ' + e.message); process.exit(1); });
