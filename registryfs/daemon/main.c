/*
 * tssx-registryfs: the TSSX registry as a FUSE filesystem (docs/design.md §1).
 *
 *   tssx-registryfs [-f] [-d] [-o OPTS] [MOUNTPOINT]
 *
 * Set-up follows libfuse's low-level examples: parse, create the session,
 * signal handlers, mount, daemonize, loop; teardown in reverse.  The helper
 * threads start after fuse_daemonize(), whose fork would lose them.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "tssx/log.h"
#include "fs.h"

#define DEFAULT_MAX_ENTRIES 16384
/* A user with a thousand TSSX sockets at once is rare; sixteen such users
 * still leave the registry room. */
#define DEFAULT_MAX_USER_ENTRIES 1024
#define MOUNT_OPTIONS "-oallow_other,fsname=" TSSX_REGISTRY_SUBTYPE ",subtype=" TSSX_REGISTRY_SUBTYPE

struct registry registry = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.probes = &os_probes,
};

static const struct fuse_lowlevel_ops registry_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.unlink = fs_unlink,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.getxattr = fs_getxattr,
	.create = fs_create,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.release = fs_release,
	/* No lock operations: the kernel then handles POSIX and BSD locks on
	 * the entries itself, between all processes of this machine. */
};

struct registry_options {
	unsigned max_entries;
	unsigned max_user_entries;
	const char *mountpoint;   /* as given, NULL for the default */
	char canonical[PATH_MAX]; /* created, checked and resolved */
};

static const struct fuse_opt registry_opt_spec[] = {
	{ "max_entries=%u", offsetof(struct registry_options, max_entries), 0 },
	{ "max_user_entries=%u", offsetof(struct registry_options, max_user_entries), 0 },
	FUSE_OPT_END,
};

static void print_usage(const char *prog)
{
	printf("Usage: %s [-f] [-d] [-o OPTIONS] [MOUNTPOINT]\n"
	       "\n"
	       "The TSSX registry: one file per Unix socket that a TSSX-aware process\n"
	       "serves or uses, whose content, a digit 0..3, has bit 0 set while a\n"
	       "TSSX-aware server listens there and bit 1 while TSSX-aware clients\n"
	       "connect.  /a/b/s.sock is MOUNTPOINT/a/b/s.sock; the abstract socket\n"
	       "\"\\0name\" is MOUNTPOINT/@name, bytes outside [A-Za-z0-9._-] as %%XX.\n"
	       "\n"
	       "A write of a digit through an open handle sets that handle's bits; the\n"
	       "file shows the OR of all open handles, and a handle's bits go when it\n"
	       "is closed or its process dies.  Only root or the socket file's owner\n"
	       "may set the server bit of a path socket, only a process listening on\n"
	       "it that of an abstract one; the bit no longer shows once that socket\n"
	       "is gone.\n"
	       "\n"
	       "MOUNTPOINT defaults to %s and is created if missing.\n"
	       "Must run as root.  Mounted with allow_other, fsname and subtype\n"
	       "tssx-registryfs.  SIGINT and SIGTERM unmount cleanly.\n"
	       "\n"
	       "Options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    -f                     stay in the foreground\n"
	       "    -d                     debug output (implies -f)\n"
	       "    -s                     single-threaded\n"
	       "    -o max_entries=N       bound on entries and directories (default %u);\n"
	       "                           creating more fails with ENOSPC\n"
	       "    -o max_user_entries=N  bound on the entries and directories one user\n"
	       "                           other than root creates (default %u); more\n"
	       "                           fail with EDQUOT for that user only\n"
	       "    -o OPT[,OPT...]        other FUSE mount options, listed below\n"
	       "\n"
	       "See tssx-registryfs(8).\n\n",
	       prog, TSSX_DEFAULT_REGISTRY, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_USER_ENTRIES);
	fuse_lowlevel_help();
}

/* The checks that deserve one clear line rather than a FUSE error. */
static int check_environment(void)
{
	if (geteuid() != 0)
		return log_error(-EPERM, "must run as root: it mounts with allow_other and "
				 "checks claims against every user's sockets");
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return log_error(-ENODEV, "/dev/fuse is missing (modprobe fuse, or give the "
				 "container the device): %m");
	return 0;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
	char copy[PATH_MAX];

	if (strlen(path) >= sizeof(copy))
		return -ENAMETOOLONG;
	strcpy(copy, path);
	for (char *slash = strchr(copy + 1, '/');; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (!slash)
			return 0;
		*slash = '/';
	}
}

/* Whether the topmost mount at `path` is a tssx-registryfs one, by
 * /proc/self/mountinfo (which never asks the mount itself). */
static bool registry_mounted_at(const char *path)
{
	char line[PATH_MAX + 512];
	struct tssx_mount_line m;
	bool found = false;
	FILE *mounts = fopen("/proc/self/mountinfo", "re");

	if (!mounts)
		return false;
	while (fgets(line, sizeof(line), mounts))
		if (tssx_mount_line_parse(line, &m) && strcmp(m.point, path) == 0)
			found = m.registry;
	fclose(mounts);
	return found;
}

/* A registry mount whose daemon died (kill -9, a crash) answers ENOTCONN
 * and cannot be unmounted while processes hold files in it: detach it
 * (lazy unmount), so that the new mount takes its place; the old one goes
 * when its last file is closed.  Any other dead mount is left alone. */
static int replace_dead_mount(const char *mountpoint)
{
	char parent[PATH_MAX], canonical[PATH_MAX], path[2 * PATH_MAX];
	const char *base;

	/* Not realpath() of the mount point itself: its root answers
	 * ENOTCONN.  Its parent's, and its last component. */
	snprintf(parent, sizeof(parent), "%s", mountpoint);
	base = strrchr(parent, '/');
	if (base && base != parent && base[1] == '\0')
		return log_error(-EINVAL, "%s: give the mount point without a trailing slash", mountpoint);
	if (base)
		parent[base == parent ? 1 : base - parent] = '\0';
	base = strrchr(mountpoint, '/') ? strrchr(mountpoint, '/') + 1 : mountpoint;
	if (!realpath(strchr(mountpoint, '/') ? parent : ".", canonical))
		return log_error(-errno, "cannot resolve the mount point %s: %m", mountpoint);
	snprintf(path, sizeof(path), "%s%s%s", canonical, strcmp(canonical, "/") ? "/" : "", base);
	if (!registry_mounted_at(path))
		return log_error(-ENOTCONN, "%s holds a dead mount that is not a registry: "
				 "unmount it first", mountpoint);
	if (umount2(path, MNT_DETACH) < 0)
		return log_error(-errno, "cannot detach the dead registry mount at %s: %m", path);
	log_info("detached the dead registry mount at %s", path);
	return 0;
}

/* Creates the mount point if needed, refuses one that already holds a live
 * registry and replaces a dead one.  Stores its canonical path in
 * canonical. */
static int prepare_mountpoint(const char *mountpoint, char canonical[PATH_MAX])
{
	char version[64];

	int r = make_dirs(mountpoint);

	if (r < 0 && r != -ENOTCONN)
		return log_error(r, "cannot create the mount point %s: %s", mountpoint, strerror(-r));
	if (getxattr(mountpoint, TSSX_REGISTRY_XATTR, version, sizeof(version)) > 0)
		return log_error(-EBUSY, "%s is already a registry", mountpoint);
	if (errno == ENOTCONN) {
		r = replace_dead_mount(mountpoint);
		if (r < 0)
			return r;
	}
	if (!realpath(mountpoint, canonical))
		return log_error(-errno, "cannot resolve the mount point %s: %m", mountpoint);
	return 0;
}

static int run_loop(struct fuse_session *se, const struct fuse_cmdline_opts *opts)
{
	struct fuse_loop_config *config;
	int r;

	if (opts->singlethread)
		return fuse_session_loop(se);
	config = fuse_loop_cfg_create();
	if (!config)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(config, opts->clone_fd);
	/* UINT_MAX: not given, keep libfuse's defaults. */
	if (opts->max_threads != UINT_MAX)
		fuse_loop_cfg_set_max_threads(config, opts->max_threads);
	if (opts->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(config, opts->max_idle_threads);
	r = fuse_session_loop_mt(se, config);
	fuse_loop_cfg_destroy(config);
	return r;
}

/* Mounted and daemonized: the helper threads, the loop, their teardown. */
static int serve(struct fuse_session *se, const struct fuse_cmdline_opts *opts,
		 const char *mountpoint)
{
	int r = notifier_start();

	if (r == 0)
		r = watcher_start();
	if (r == 0) {
		/* libfuse returns the number of the signal that ended the loop. */
		r = run_loop(se, opts);
		if (r > 0)
			log_info("stopping on signal %d", r);
		else if (r < 0)
			log_error(0, "the FUSE loop failed: %s", strerror(-r));
	}
	watcher_stop();
	notifier_stop(mountpoint);
	return r;
}

static int mount_and_serve(struct fuse_args *args, const struct fuse_cmdline_opts *opts,
			   const char *mountpoint)
{
	struct fuse_session *se = fuse_session_new(args, &registry_ops, sizeof(registry_ops), NULL);
	int r = -1;

	if (!se)
		return -1;
	registry.se = se;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, mountpoint) == 0) {
			fuse_daemonize(opts->foreground);
			r = serve(se, opts, mountpoint);
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return r;
}

/* Whether the command line only asks for help or the version. */
static bool wants_info(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") ||
		    !strcmp(argv[i], "-V") || !strcmp(argv[i], "--version"))
			return true;
	return false;
}

/* Our own options go; the mount point is noted (and kept for libfuse). */
static int take_registry_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct registry_options *ropts = data;

	if (key == FUSE_OPT_KEY_NONOPT && !ropts->mountpoint)
		ropts->mountpoint = arg;
	return 1;
}

static int parse_args(struct fuse_args *args, struct fuse_cmdline_opts *opts,
		      struct registry_options *ropts)
{
	bool info = wants_info(args->argc, args->argv);
	int r;

	if (fuse_opt_parse(args, ropts, registry_opt_spec, take_registry_option) != 0)
		return -1;
	if (ropts->max_entries == 0)
		return log_error(-1, "max_entries must be at least 1");
	if (ropts->max_user_entries == 0)
		return log_error(-1, "max_user_entries must be at least 1");
	if (!info) {
		r = check_environment();
		if (r == 0)
			r = prepare_mountpoint(ropts->mountpoint ? ropts->mountpoint
								 : TSSX_DEFAULT_REGISTRY,
					       ropts->canonical);
		if (r < 0)
			return r;
	}
	if (fuse_parse_cmdline(args, opts) != 0)
		return -1;
	if (opts->show_help) {
		print_usage(args->argv[0]);
		return 1;
	}
	if (opts->show_version) {
		printf("tssx-registryfs %s\n", TSSX_VERSION);
		fuse_lowlevel_version();
		return 1;
	}
	if (opts->debug)
		tssx_log_level = TSSX_LOG_DEBUG;
	return fuse_opt_add_arg(args, MOUNT_OPTIONS);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = { 0 };
	struct registry_options ropts = {
		.max_entries = DEFAULT_MAX_ENTRIES,
		.max_user_entries = DEFAULT_MAX_USER_ENTRIES,
	};
	int r = parse_args(&args, &opts, &ropts);

	if (r == 0) {
		registry.table = table_new(ropts.max_entries, ropts.max_user_entries, ropts.canonical);
		r = registry.table ? mount_and_serve(&args, &opts, ropts.canonical) : -ENOMEM;
		fs_free_snapshots();
		table_free(registry.table);
	}
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return r < 0 ? 1 : 0;
}
