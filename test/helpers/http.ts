/** fetch that returns the status, headers and the body parsed as JSON when it is JSON (text otherwise). */
export async function fetchBody(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text
  }
  return { status: res.status, headers: res.headers, body };
}
