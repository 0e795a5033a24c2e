#!/usr/bin/perl
# Swaps a directory in a tight loop, for the race tests
# (test/jido_code/adversarial/race_test.exs). Run as an OS process so the
# swaps are truly concurrent with the VM, not scheduled by it.
#
#   perl swap_loop.pl symlink|dir <target> <aside> <decoy>
#
# Each round renames <target> to <aside> and puts something else at <target>:
#   symlink  a symlink to <decoy> (an existing directory), then removes it;
#   dir      the real directory <decoy> (renamed in, then renamed back);
# and finally renames <aside> back to <target>.
#
# Commands, one per line on stdin:
#   p   restore <target> (and <decoy>), answer "paused <rounds>", wait for r
#   d   restore, then hold the swapped state (<decoy> or the symlink to it at
#       <target>), answer "decoy", wait for r
#   r   resume swapping
#   q   restore and exit (end of stdin does the same, so the loop dies with
#       its parent)
# Prints "swapping" when the loop starts.
use strict;
use warnings;
use IO::Select;
use IO::Handle;

my ($mode, $target, $aside, $decoy) = @ARGV;
die "usage: swap_loop.pl symlink|dir <target> <aside> <decoy>\n"
  unless defined $decoy && ($mode eq 'symlink' || $mode eq 'dir');
STDOUT->autoflush(1);

my $stdin  = IO::Select->new(\*STDIN);
my $rounds = 0;

# Puts everything back where it was, from any point of a round.
sub restore {
    if (-e $aside || -l $aside) {
        if ($mode eq 'symlink') {
            unlink $target if -l $target;
        } elsif (-d $target && !-l $target) {
            rename $target, $decoy or die "restore decoy: $!";
        }
        rename $aside, $target or die "restore target: $!";
    }
}

# Reads a command line without blocking (or blocking, when paused). Reads
# with sysread into our own buffer: perl's buffered <STDIN> could swallow a
# second command that select() would then never report.
my $buffer = '';
sub command {
    my ($block) = @_;
    while (1) {
        if ($buffer =~ s/^([^\n]*)\n//) {
            return $1;
        }
        return undef unless $block || $stdin->can_read(0);
        my $read = sysread(STDIN, $buffer, 4096, length $buffer);
        return 'q' unless $read;    # end of input (or an error): stop
    }
}

print "swapping\n";
while (1) {
    my $cmd = command(0);
    if (defined $cmd) {
        restore();
        if ($cmd eq 'q') { exit 0 }
        if ($cmd eq 'p' || $cmd eq 'd') {
            if ($cmd eq 'p') {
                print "paused $rounds\n";
            } else {
                swap_in();
                print "decoy\n";
            }
            while (1) {
                my $next = command(1);
                if ($next eq 'q') { restore(); exit 0 }
                last if $next eq 'r';
            }
            restore();
        }
    }
    swap_in();
    swap_out();
    rename $aside, $target or die "rename back: $!";
    $rounds++;
}

# <target> moved aside and the decoy (or a symlink to it) in its place.
sub swap_in {
    rename $target, $aside or die "rename away: $!";
    if ($mode eq 'symlink') {
        symlink $decoy, $target or die "symlink: $!";
    } else {
        rename $decoy, $target or die "rename decoy in: $!";
    }
}

# The decoy (or symlink) gone again; <target> still aside.
sub swap_out {
    if ($mode eq 'symlink') {
        unlink $target or die "unlink: $!";
    } else {
        rename $target, $decoy or die "rename decoy out: $!";
    }
}
