// Renders /v1/openapi.json as a page: operations by tag, then every schema.
// DOM nodes are built with textContent only, so no text from the document is parsed as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function refName(ref) {
  return ref.split("/").pop();
}

// A compact, readable rendering of a JSON Schema: $refs become links to the schema section.
function schemaNode(schema) {
  if (!schema || Object.keys(schema).length === 0) return el("code", {}, "any");
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return el("a", { href: "#schema-" + name }, name);
  }
  if (schema.anyOf || schema.allOf) {
    const parts = schema.anyOf || schema.allOf;
    const span = el("span", {});
    parts.forEach((part, i) => {
      if (i) span.append(schema.anyOf ? " or " : " and ");
      span.append(schemaNode(part));
    });
    return span;
  }
  if (schema.type === "array") return el("span", {}, "array of ", schemaNode(schema.items));
  if (schema.type === "object" && schema.properties) return propertiesTable(schema);
  if (schema.type === "object" && schema.additionalProperties) {
    return el("span", {}, "map of string to ", schemaNode(schema.additionalProperties));
  }
  let text = schema.type || "any";
  if (schema.format) text += " (" + schema.format + ")";
  if (schema.enum) text += ": " + schema.enum.join(" | ");
  if (schema.pattern) text += " matching " + schema.pattern;
  return el("code", {}, text);
}

function propertiesTable(schema) {
  const required = new Set(schema.required || []);
  const table = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"),
    el("th", {}, "description")));
  for (const [name, prop] of Object.entries(schema.properties)) {
    const label = el("code", {}, name + (required.has(name) ? "" : "?"));
    table.append(el("tr", {}, el("td", {}, label), el("td", {}, schemaNode(prop)),
      el("td", {}, prop.description || "")));
  }
  const wrap = el("div", {});
  if (schema.description) wrap.append(el("p", { class: "desc" }, schema.description));
  wrap.append(table);
  return wrap;
}

function operationNode(method, path, op) {
  const head = el("summary", {},
    el("span", { class: "method " + method }, method.toUpperCase()),
    el("span", { class: "path" + (op.security && op.security.length ? " lock" : "") }, path),
    " \u2014 " + (op.summary || ""));
  const body = el("details", { id: op.operationId }, head);
  if (op.description) body.append(el("p", { class: "desc" }, op.description));
  if (op.parameters) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"),
      el("th", {}, "type"), el("th", {}, "description")));
    for (const p of op.parameters) {
      table.append(el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? "" : "?"))),
        el("td", {}, p.in), el("td", {}, schemaNode(p.schema)), el("td", {}, p.description || "")));
    }
    body.append(el("h4", {}, "Parameters"), table);
  }
  if (op.requestBody) {
    const content = op.requestBody.content["application/json"];
    body.append(el("h4", {}, "Request body (JSON)"), schemaNode(content.schema));
  }
  body.append(el("h4", {}, "Responses"));
  const table = el("table", {});
  for (const [status, response] of Object.entries(op.responses)) {
    const media = response.content ? Object.entries(response.content)[0] : null;
    const shape = media ? (media[0] === "application/json" ? schemaNode(media[1].schema)
      : el("code", {}, media[0])) : "no body";
    table.append(el("tr", {}, el("td", {}, el("b", {}, status)),
      el("td", {}, response.description || ""), el("td", {}, shape)));
  }
  body.append(table);
  return body;
}

function render(doc) {
  const root = document.getElementById("api");
  root.replaceChildren(el("pre", {}, doc.info.description || ""));
  const byTag = new Map();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationNode(method, path, op));
    }
  }
  for (const [tag, nodes] of byTag) root.append(el("h2", {}, tag), ...nodes);
  root.append(el("h2", {}, "schemas"));
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    root.append(el("section", { id: "schema-" + name }, el("h3", {}, name), schemaNode(
      schema.allOf ? schema : { ...schema, $ref: undefined })));
  }
}

fetch("/v1/openapi.json")
  .then((response) => {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("api").replaceChildren(
      el("p", {}, "Could not load /v1/openapi.json: " + error.message));
  });
