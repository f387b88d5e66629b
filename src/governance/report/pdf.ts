// The evidence page printed to PDF by a headless Chromium (playwright-core, loaded only when a PDF
// is asked for): the same HTML, so the PDF shows exactly what the page shows.

/** Chromium's flags for a headless, offline print (no GPU, no network services, no sandbox in containers). */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Where Chromium is: `PORTCULLIS_CHROMIUM`, else Debian's /usr/bin/chromium. */
export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PORTCULLIS_CHROMIUM ?? '/usr/bin/chromium';
}

export async function htmlToPdf(html: string, o: { executablePath?: string } = {}): Promise<Buffer> {
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    throw new Error('PDF output needs the playwright-core package (npm install playwright-core) and a Chromium; use --format html and print it from a browser instead');
  }
  const browser = await chromium.launch({ executablePath: o.executablePath ?? chromiumPath(), args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    // Nothing is fetched: the page is self-contained, and every request is refused to make sure.
    await page.route('**/*', (route) => route.abort());
    await page.setContent(html, { waitUntil: 'load' });
    return await page.pdf({ format: 'A4', printBackground: true, margin: { top: '12mm', bottom: '12mm', left: '10mm', right: '10mm' } });
  } finally {
    await browser.close();
  }
}
