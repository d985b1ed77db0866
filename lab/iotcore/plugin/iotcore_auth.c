/*
 * iotcore_auth.c - Mosquitto 2 plugin of the iotfleet.aws lab's AWS IoT Core stand-in.
 *
 * The broker does the MQTT (3.1.1 and 5) and the TLS; this plugin asks the stand-in's registry,
 * over a Unix socket, whether a client may connect and whether it may publish, subscribe or
 * receive, exactly as AWS IoT Core decides it from the certificate and its attached policies.
 * All decisions are the stand-in's (lab/iotcore/authz.py); this file only forwards them.
 *
 * mosquitto.conf:
 *     plugin /path/iotcore_auth.so
 *     plugin_opt_socket /path/authz.sock
 *
 * Protocol: one line per request, one line per reply; variable fields are hex-encoded.
 *     C <conn> <protocol_version> <client_id> <certificate DER>  ->  A | D <reason>
 *     P <conn> <access> <client_id> <topic>                       ->  A | D | K (deny and disconnect)
 *     X <conn>                                                    ->  A
 * <conn> is the broker's client pointer, unique while the client is connected. A missing or
 * broken socket denies (fail closed). Publishes that AWS answers with a disconnect are denied at
 * once and the client is kicked on the broker's next tick (never inside the ACL callback); a new
 * CONNECT with the same client id cancels a pending kick (the broker replaces the old session).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/x509.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>


static mosquitto_plugin_id_t *plugin_id;
static char socket_path[108];
static int sock = -1;
static FILE *sock_in;
static char **kicks;      /* client ids to disconnect on the next tick (refused publishes) */
static int kick_count, kick_room;

static void kick_later(const char *client_id)
{
	if(kick_count == kick_room){
		int room = kick_room ? kick_room * 2 : 64;
		char **grown = realloc(kicks, (size_t)room * sizeof(char *));
		if(!grown) return;
		kicks = grown;
		kick_room = room;
	}
	kicks[kick_count++] = strdup(client_id);
}

/* A new CONNECT with this id replaces the old session (the broker closes it): a pending kick
 * aimed at the old connection must not hit the new one. */
static void forget_kicks(const char *client_id)
{
	int i, j = 0;
	for(i = 0; i < kick_count; i++){
		if(client_id && kicks[i] && !strcmp(kicks[i], client_id)){
			free(kicks[i]);
		}else{
			kicks[j++] = kicks[i];
		}
	}
	kick_count = j;
}

static int connect_socket(void)
{
	struct sockaddr_un addr;
	if(sock >= 0) return 0;
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	if(sock < 0) return -1;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, socket_path, sizeof(socket_path));
	if(connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0){
		mosquitto_log_printf(MOSQ_LOG_ERR, "iotcore: cannot reach the registry at %s: %s",
				socket_path, strerror(errno));
		close(sock);
		sock = -1;
		return -1;
	}
	sock_in = fdopen(dup(sock), "r");
	return 0;
}

static void drop_socket(void)
{
	if(sock_in) fclose(sock_in);
	if(sock >= 0) close(sock);
	sock_in = NULL;
	sock = -1;
}

/* Append the hex form of len bytes to buf at *pos (buf has room: the caller sized it). */
static void put_hex(char *buf, size_t *pos, const unsigned char *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;
	buf[(*pos)++] = ' ';
	if(len == 0){
		buf[(*pos)++] = '-';
		return;
	}
	for(i = 0; i < len; i++){
		buf[(*pos)++] = digits[data[i] >> 4];
		buf[(*pos)++] = digits[data[i] & 0x0f];
	}
}

/* Send one request line; read the reply line into reply. Retries once on a broken socket. */
static int ask(const char *request, size_t len, char *reply, size_t reply_len)
{
	int attempt;
	for(attempt = 0; attempt < 2; attempt++){
		size_t sent = 0;
		if(connect_socket() != 0) return -1;
		while(sent < len){
			ssize_t n = send(sock, request + sent, len - sent, MSG_NOSIGNAL);
			if(n <= 0) break;
			sent += (size_t)n;
		}
		if(sent == len && fgets(reply, (int)reply_len, sock_in)){
			if(strchr(reply, '\n')) return 0;
			drop_socket();   /* a reply longer than the buffer: resynchronise on a new socket */
			return -1;
		}
		drop_socket();
	}
	return -1;
}

static char *request_buffer(size_t payload)
{
	return malloc(payload * 2 + 128);
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	X509 *cert = mosquitto_client_certificate(ed->client);
	unsigned char *der = NULL;
	int der_len = 0;
	char *req, reply[512];
	size_t pos = 0, id_len = client_id ? strlen(client_id) : 0;
	int rc = MOSQ_ERR_AUTH;

	(void)event; (void)userdata;
	forget_kicks(client_id);
	if(cert){
		der_len = i2d_X509(cert, &der);
		X509_free(cert);
	}
	if(der_len <= 0){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "iotcore: refused %s: no client certificate",
				client_id ? client_id : "?");
		return MOSQ_ERR_AUTH;
	}
	req = request_buffer(id_len + (size_t)der_len);
	if(req){
		pos = (size_t)sprintf(req, "C %p %d", (void *)ed->client, mosquitto_client_protocol_version(ed->client));
		put_hex(req, &pos, (const unsigned char *)client_id, id_len);
		put_hex(req, &pos, der, (size_t)der_len);
		req[pos++] = '\n';
		if(ask(req, pos, reply, sizeof(reply)) == 0 && reply[0] == 'A'){
			rc = MOSQ_ERR_SUCCESS;
		}else{
			reply[strcspn(reply, "\n")] = '\0';
			mosquitto_log_printf(MOSQ_LOG_NOTICE, "iotcore: refused connect of %s: %s",
					client_id ? client_id : "?", reply[0] == 'D' ? reply + 1 : " registry unreachable");
		}
		free(req);
	}
	OPENSSL_free(der);
	return rc;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	size_t id_len = client_id ? strlen(client_id) : 0, topic_len = ed->topic ? strlen(ed->topic) : 0;
	char *req, reply[64];
	size_t pos;
	int rc = MOSQ_ERR_ACL_DENIED;

	(void)event; (void)userdata;
	if(ed->access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
	req = request_buffer(id_len + topic_len);
	if(!req) return MOSQ_ERR_ACL_DENIED;
	pos = (size_t)sprintf(req, "P %p %d", (void *)ed->client, ed->access);
	put_hex(req, &pos, (const unsigned char *)client_id, id_len);
	put_hex(req, &pos, (const unsigned char *)ed->topic, topic_len);
	req[pos++] = '\n';
	if(ask(req, pos, reply, sizeof(reply)) == 0){
		if(reply[0] == 'A'){
			rc = MOSQ_ERR_SUCCESS;
		}else if(reply[0] == 'K' && client_id){
			kick_later(client_id);
		}
	}
	free(req);
	return rc;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	char req[64], reply[16];
	int n;
	(void)event; (void)userdata;
	n = snprintf(req, sizeof(req), "X %p\n", (void *)ed->client);
	ask(req, (size_t)n, reply, sizeof(reply));
	return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *event_data, void *userdata)
{
	int i;
	(void)event; (void)event_data; (void)userdata;
	for(i = 0; i < kick_count; i++){
		if(!kicks[i]) continue;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "iotcore: disconnecting %s (publish not authorized)", kicks[i]);
		mosquitto_kick_client_by_clientid(kicks[i], false);
		free(kicks[i]);
	}
	kick_count = 0;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;
	for(i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	int i;
	(void)userdata;
	plugin_id = identifier;
	for(i = 0; i < option_count; i++){
		if(!strcmp(options[i].key, "socket")){
			strncpy(socket_path, options[i].value, sizeof(socket_path) - 1);
		}
	}
	if(!socket_path[0]){
		mosquitto_log_printf(MOSQ_LOG_ERR, "iotcore: plugin_opt_socket is required");
		return MOSQ_ERR_INVAL;
	}
	if(mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL)
			|| mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL)
			|| mosquitto_callback_register(plugin_id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, NULL)
			|| mosquitto_callback_register(plugin_id, MOSQ_EVT_TICK, on_tick, NULL, NULL)){
		return MOSQ_ERR_UNKNOWN;
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata; (void)options; (void)option_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_TICK, on_tick, NULL);
	drop_socket();
	return MOSQ_ERR_SUCCESS;
}
