/*
 * webui.c: GET /, the chat page: one self-contained HTML file (src/server/webui/chat.html, compiled
 * in as webui.h's array) whose inline script talks only to this server's own API (GET /v1/models,
 * POST /v1/chat/completions with stream: true). The page itself is public, like /health: it holds
 * no data, and the API calls it makes carry the key the user types. --no-webui removes the route
 * (routes.c), so GET / is then a 404 like any unknown path.
 *
 * The Content-Security-Policy allows nothing remote: the inline script and style run only by their
 * SHA-256 hashes (computed here once from the embedded page, so an edited page needs no edited
 * policy), connections go only to this origin, and the page can be neither framed (clickjacking)
 * nor made to submit forms. Cache-Control: no-cache, so a browser never keeps a page older than the
 * server it talks to.
 */
#include "server/server_internal.h"

#include "server/webui.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static char policy[512];
static pthread_once_t policy_once = PTHREAD_ONCE_INIT;

/* Writes 'sha256-BASE64' of the text between the page's first `open` tag and the `close` tag after
 * it (what a browser hashes for an inline element), or 'none' when there is no such element. */
static void element_hash(char *out, size_t cap, const char *open, const char *close) {
    const char *start = strstr((const char *)bn_webui_chat_html, open);
    if (start) start += strlen(open);
    const char *end = start ? strstr(start, close) : NULL;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!end || !EVP_Digest(start, (size_t)(end - start), digest, &n, EVP_sha256(), NULL)) {
        snprintf(out, cap, "'none'");
        return;
    }
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    EVP_EncodeBlock(b64, digest, (int)n);
    snprintf(out, cap, "'sha256-%s'", (const char *)b64);
}

static void build_policy(void) {
    char script[128], style[128];
    element_hash(script, sizeof script, "<script>", "</script>");
    element_hash(style, sizeof style, "<style>", "</style>");
    snprintf(policy, sizeof policy,
             "default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src data:; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
             script, style);
}

enum MHD_Result bn_route_chat_page(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    pthread_once(&policy_once, build_policy);
    static const char *const headers[] = {"Content-Security-Policy", policy, "Cache-Control", "no-cache",
                                          "X-Content-Type-Options", "nosniff", "X-Frame-Options", "DENY",
                                          "Referrer-Policy", "no-referrer", NULL};
    c->extra_headers = headers;
    return bn_respond(c, conn, 200, strndup((const char *)bn_webui_chat_html, bn_webui_chat_html_len),
                      "text/html; charset=utf-8", 0, NULL, false);
}
