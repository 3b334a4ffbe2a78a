"""Write your own convolution: a readable reference, a catalogue of named mistakes, the checker.

``reference`` is the convolution as plain loops; ``mistakes`` computes each classic mistake
exactly; ``check`` runs a learner's file in a child process and names the mistake it made.
"""
