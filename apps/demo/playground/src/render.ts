/**
 * Turns ACP message parts into DOM nodes without ever parsing agent output as HTML: text goes in
 * through `textContent`, JSON is pretty-printed as text, images come from base64 parts as `data:`
 * URLs, and markdown goes through markdown-it with raw HTML off (`html: false` escapes every tag),
 * its link check on (no `javascript:`, `vbscript:`, `file:` or `data:` links) and images off (an
 * agent's markdown must not make the browser fetch from another origin).
 */
import MarkdownIt from "markdown-it";

export interface Part {
  name?: string | null;
  content_type?: string | null;
  content?: string | null;
  content_encoding?: "plain" | "base64" | null;
  content_url?: string | null;
}

export interface Message {
  role?: string;
  parts: Part[];
}

const markdown = new MarkdownIt({ html: false, linkify: false, typographer: false }).disable("image");
const defaultLink = markdown.renderer.rules.link_open;
markdown.renderer.rules.link_open = function safeLinkOpen(tokens, index, options, env, self) {
  const token = tokens[index]!;
  token.attrSet("target", "_blank");
  token.attrSet("rel", "noopener noreferrer nofollow");
  return defaultLink ? defaultLink(tokens, index, options, env, self) : self.renderToken(tokens, index, options);
};

/** Object URLs made for downloads; revoked when the transcript is cleared. */
const objectUrls: string[] = [];

export function revokeDownloads(): void {
  for (const url of objectUrls.splice(0)) URL.revokeObjectURL(url);
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const typeOf = (part: Part): string => (part.content_type || "text/plain").toLowerCase().split(";")[0]!.trim();
const isBase64 = (part: Part): boolean => part.content_encoding === "base64";
const DISPLAYABLE_IMAGE = /^image\/(png|jpeg|gif|webp|avif|bmp|svg\+xml)$/;

function decodeBase64(content: string): Uint8Array {
  const binary = atob(content.replace(/\s+/g, ""));
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/** Markdown as HTML built by markdown-it from escaped text: the only innerHTML in the page. */
export function renderMarkdown(source: string): HTMLElement {
  const container = element("div", "markdown");
  container.innerHTML = markdown.render(source);
  return container;
}

function renderJson(source: string): HTMLElement {
  let text = source;
  try {
    text = JSON.stringify(JSON.parse(source), null, 2);
  } catch {
    // not valid JSON: show it as it came
  }
  return element("pre", "json", text);
}

/** The body of one part, shown inline. */
function renderContent(part: Part): HTMLElement {
  const type = typeOf(part);
  const content = part.content ?? "";
  if (part.content == null && part.content_url) {
    const link = element("a", "url", part.content_url);
    if (/^https?:\/\//i.test(part.content_url)) link.href = part.content_url;
    link.rel = "noopener noreferrer nofollow";
    link.target = "_blank";
    return link;
  }
  if (isBase64(part)) {
    if (DISPLAYABLE_IMAGE.test(type) && /^[A-Za-z0-9+/=\s]*$/.test(content)) {
      const image = element("img", "image");
      image.alt = part.name || type;
      image.src = `data:${type};base64,${content.replace(/\s+/g, "")}`;
      return image;
    }
    return element("span", "binary", `${type}, ${Math.floor((content.length * 3) / 4)} bytes`);
  }
  if (type === "text/markdown") return renderMarkdown(content);
  if (type === "application/json" || type.endsWith("+json")) return renderJson(content);
  return element("span", "text", content);
}

function download(part: Part): HTMLAnchorElement {
  const type = typeOf(part);
  // Always an opaque download: a blob typed text/html and opened in a tab would render in this origin.
  const opaque = { type: "application/octet-stream" };
  const blob = isBase64(part)
    ? new Blob([decodeBase64(part.content ?? "") as BlobPart], opaque)
    : new Blob([part.content ?? ""], opaque);
  const url = URL.createObjectURL(blob);
  objectUrls.push(url);
  const link = element("a", "download", `Download ${part.name}`);
  link.href = url;
  link.download = part.name ?? "artifact";
  link.title = `${type}, ${blob.size} bytes`;
  return link;
}

/** One part: an artifact (a named part) as a downloadable item with a preview, others inline. */
export function renderPart(part: Part): HTMLElement {
  if (!part.name) return renderContent(part);
  const item = element("figure", "artifact");
  const caption = element("figcaption");
  caption.append(element("span", "artifact-name", part.name), element("span", "artifact-type", typeOf(part)));
  if (part.content != null) caption.append(download(part));
  item.append(caption, renderContent(part));
  return item;
}

/** A whole message's parts, in order; consecutive plain text parts join into one run of text. */
export function renderParts(parts: Part[], into: HTMLElement): void {
  into.replaceChildren();
  for (const part of parts) {
    const last = into.lastElementChild;
    const plain = !part.name && !isBase64(part) && typeOf(part) === "text/plain" && part.content != null;
    if (plain && last instanceof HTMLSpanElement && last.className === "text") {
      last.textContent += part.content ?? "";
      continue;
    }
    into.append(renderPart(part));
  }
}
